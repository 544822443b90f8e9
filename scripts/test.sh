#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL. Starts the machine's
# PostgreSQL first (scripts/postgres.sh); fails if it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fonts.sh   # the CJK font the forms PDFs embed
scripts/browser.sh # Chromium, chromedriver and CJK fonts for the signage browser tests
scripts/k8s-check.sh # k8s/ rendered, validated, its rules and zones tested (no cluster needed)
scripts/examples-setup.sh # the client examples' Python venv and npm packages (tests/tests/examples.rs runs them)
MADOGUCHI_TEST_POSTGRES_URL="$(scripts/postgres.sh --drop-test-databases)"
export MADOGUCHI_TEST_POSTGRES_URL
exec cargo test --workspace --all-targets "$@"
