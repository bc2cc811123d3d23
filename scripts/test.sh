#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, the unit
# tests and the multi-node e2e suites (which drive the real `shoal` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
# No import cycle among the files of these crates (the manager still has
# some: see the architecture's "Code conventions"); a new one fails here.
command -v python3 >/dev/null || { echo "Error: python3 is needed for the import-cycle check: install it (apt-get install -y python3)" >&2; exit 1; }
for crate in agent cli compose docker-api e2e overlay-net proto scheduler security; do
    python3 scripts/import-cycles.py "$crate/src" >/dev/null || {
        python3 scripts/import-cycles.py "$crate/src" | grep CYCLE >&2
        echo "Error: an import cycle among the files of $crate: let the lower module not name the higher one" >&2
        exit 1
    }
done
cargo clippy --workspace --all-targets -- -D warnings
# The e2e suites run the `shoal` binary, which test builds alone do not produce.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
