#!/usr/bin/env bash
# Installs what the browser tests need from Debian: Chromium, its
# WebDriver (chromedriver, which the tests drive through the `fantoccini`
# crate) and CJK fonts so that pages and screenshots render Japanese,
# Chinese and Korean. Idempotent: when everything is present it only
# checks and exits. No browser is downloaded from anywhere but the distro.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "install ok installed" || need+=(fonts-noto-cjk)

if [ "${#need[@]}" -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
fi

chromium --version
chromedriver --version
