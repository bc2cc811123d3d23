#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, the unit
# tests and the multi-node e2e suites (which drive the real `shoal` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The e2e suites run the `shoal` binary, which test builds alone do not produce.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
