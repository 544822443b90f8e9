#!/usr/bin/env bash
# Installs the buf CLI from the npm registry into .ci/tools (git-ignored)
# and prints the path of the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/tools"
version="1.75.0"
if [ ! -x "$tools/node_modules/.bin/buf" ]; then
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@bufbuild/buf@$version" >&2
fi
echo "$tools/node_modules/.bin/buf"
