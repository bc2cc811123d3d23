#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time (default 60 s each,
# SHOAL_FUZZ_SECONDS to change it) from the seed corpus committed in
# fuzz/corpus/, and fails on the first crash, panic, timeout or memory
# blow-up; libFuzzer then prints the input, and cargo fuzz saves it under
# fuzz/artifacts/TARGET/ (replay it with `cargo fuzz run TARGET FILE`).
# `scripts/fuzz.sh TARGET…` runs only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${SHOAL_FUZZ_SECONDS:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# No sanitizer: every fuzzed crate is `#![forbid(unsafe_code)]`, and what
# fuzzing looks for here (panics, overflow with debug assertions on, stack
# overflow, hangs, memory blow-ups) libFuzzer catches without one. It also
# builds on the stable toolchain, where AddressSanitizer needs nightly.
FUZZ=(cargo fuzz)
BUILD_FLAGS=(--sanitizer none)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <("${FUZZ[@]}" list)
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
"${FUZZ[@]}" build "${BUILD_FLAGS[@]}"

# New inputs go to a scratch corpus; the committed seeds are only read.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    seeds="fuzz/corpus/$target"
    if [[ ! -d "$seeds" ]]; then
        echo "Error: no seed corpus $seeds for fuzz target $target: add a few inputs there" >&2
        exit 1
    fi
    mkdir -p "$work/$target"
    dict=()
    if [[ -f "fuzz/dict/$target.dict" ]]; then
        dict=("-dict=fuzz/dict/$target.dict")
    fi
    echo "fuzzing $target for ${SECONDS_EACH}s"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: 2 GB is a
    # blow-up (the loaders' bounds keep any input far below it).
    "${FUZZ[@]}" run "${BUILD_FLAGS[@]}" "$target" "$work/$target" "$seeds" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}"
done
