#!/usr/bin/env bash
# Every test pullman has: unit, property and end-to-end tests (`cargo test --workspace`, its
# end-to-end suite over TCP and Unix sockets as each test names), the end-to-end suite again
# with every worker over shared memory and once over a Unix socket, and the loom model checks
# of the shared-memory rings (their own target dir: --cfg loom rebuilds everything).
# Extra arguments go to every cargo call (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")"

cargo test --workspace "$@"
PULLMAN_E2E_TRANSPORT=shm cargo test "$@" --test e2e
PULLMAN_E2E_TRANSPORT=unix cargo test "$@" --test e2e
# The model checker wants release speed, not the release profile's link-time optimisation,
# which would only make its build longer.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom CARGO_PROFILE_RELEASE_LTO=off \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo test "$@" -p pullman-shm --release --test loom
