#!/usr/bin/env bash
# Installs what the client examples (examples/) need, all pinned, into
# git-ignored directories, and reuses them while their pins are unchanged:
#   PyPI (examples/python/requirements.txt, --no-deps) into
#     .ci/tools/examples-venv: grpcio, grpcio-tools (the stubs are generated
#     from proto/ when the example starts), grpcio-reflection, grpcio-status;
#   npm (examples/typescript/package-lock.json, `npm ci`) into
#     examples/typescript/node_modules: @grpc/grpc-js, ts-proto, buf,
#     TypeScript; `npm run build` then generates and compiles the stubs.
# tests/tests/examples.rs runs both examples against a server on port 0 and
# fails, rather than skips, when this has not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.ci/tools/examples-venv"
REQUIREMENTS="$ROOT/examples/python/requirements.txt"
NODE_DIR="$ROOT/examples/typescript"

stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "examples: installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
  echo "$want" > "$stamp"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "FAILED: no node/npm on PATH; the TypeScript example needs Node.js 20 or later" >&2
  exit 1
fi
if (( "$(node -p 'process.versions.node.split(".")[0]')" < 20 )); then
  echo "FAILED: Node.js $(node --version) is older than 20" >&2
  exit 1
fi
npm_stamp="$NODE_DIR/node_modules/.lock.sha256"
npm_want="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]]; then
  echo "examples: npm ci in $NODE_DIR"
  (cd "$NODE_DIR" && npm ci --silent --no-audit --no-fund)
  echo "$npm_want" > "$npm_stamp"
fi
