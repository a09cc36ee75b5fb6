#!/bin/sh
# Builds every cargo-fuzz target and runs each for FUZZ_SECONDS (default 10) seconds from
# its seed corpus (fuzz/seeds/<target>/, copied to a temporary directory so the tree is not
# changed). Fails if any target crashes, leaks, times out or runs out of memory; the input
# that did is kept in fuzz/artifacts/<target>/ (ignored by git). Without a nightly toolchain
# or cargo-fuzz, says so in one line and succeeds: fuzzing is skipped, not failed.
set -eu

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-10}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
    exit 0
fi

cargo +nightly fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=""
for target in $(cargo +nightly fuzz list); do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [ -d "fuzz/seeds/$target" ]; then
        cp fuzz/seeds/"$target"/* "$corpus"/
    fi
    echo "fuzz: $target for ${seconds}s"
    # stdin from /dev/null: a config may name /dev/stdin as a secret file, which must not
    # wait for a terminal.
    if ! cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 </dev/null; then
        failed="$failed $target"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
