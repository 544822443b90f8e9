#!/usr/bin/env bash
# Installs the CJK font the forms service embeds in its PDFs (IPAex Gothic,
# Debian's fonts-ipaexfont-gothic). Idempotent: does nothing when the font
# is already there. Needs root (or sudo) only when it has to install.
set -euo pipefail
font=/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf
if [ -f "$font" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq fonts-ipaexfont-gothic >/dev/null
test -f "$font"
