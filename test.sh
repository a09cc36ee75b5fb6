#!/usr/bin/env bash
# Every test pullman has: unit, property and end-to-end tests (`cargo test --workspace`, its
# end-to-end suite over TCP and Unix sockets as each test names, and the chaos suite for
# PULLMAN_CHAOS_SECS, default 60), the end-to-end suite again
# with every worker over shared memory and once over a Unix socket, and the loom model checks
# of the shared-memory rings (their own target dir: --cfg loom rebuilds everything), and the
# Python package's tests (pytest in bench/.venv, where .ci/run installs the package).
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

# The Python tests need the venv with the package installed (.ci/run makes it); without it
# they are skipped, unless PULLMAN_REQUIRE_PYTHON=1 makes that a failure.
py=bench/.venv/bin/python
if [ -x "$py" ] && "$py" -c 'import pullman._native, pytest' 2>/dev/null; then
  "$py" -m pytest -q python/tests
elif [ "${PULLMAN_REQUIRE_PYTHON:-0}" = 1 ]; then
  echo "test.sh: PULLMAN_REQUIRE_PYTHON=1 but $py lacks pullman or pytest (run .ci/run)" >&2
  exit 1
else
  echo "test.sh: Python tests skipped: $py lacks pullman or pytest (.ci/run installs them)"
fi
