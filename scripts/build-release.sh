#!/usr/bin/env bash
# Builds the server binary a deployment runs: the one the container image
# (Containerfile) ships and the one CI (.ci/run) builds, by this one
# command, so the image never carries something CI did not compile.
# Prints the binary's path. Release profile: fat LTO, one codegen unit
# (Cargo.toml), so it takes minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p madoguchi --bin madoguchi >&2
echo "$(pwd)/target/release/madoguchi"
