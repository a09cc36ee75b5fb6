#!/usr/bin/env bash
# Runs the benchmark suite and writes docs/benchmarks.md and its plots (docs/bench/).
# Needs the peers installed by bench/setup.sh. The full run takes about 25 minutes on 2 cores.
# Usage: bench/run.sh [--quick] [--scenario NAME]... [--rounds N] [other pullman-bench run flags]
#   --quick            every scenario briefly, one round (a smoke check)
#   --scenario NAME    only this scenario (repeatable): overhead, expensive, hol, bodies, scale,
#                      transport, filter, pothead, capi, python, https
#   --baseline PATH    a pullman binary from an older commit: overhead and filter also run
#                      pullman (TCP) and pullman filter from it, side by side with this build
#                      in the same rounds, and report this build's req/s over the baseline's
# A run of every scenario also writes all its records to docs/bench/results.json (each
# scenario's own records are always in docs/bench/NAME.json).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p pullman -p pullman-bench
# The capi scenario's C worker: examples/c/hello.c linked with pullman's C API as a static
# library, with the system libraries it needs (as tests/capi.rs links it). pullman-capi is
# built on its own so that the features it unifies do not change the pullman binary the
# other scenarios run. Without a C compiler, or if this fails, the scenario says the C worker
# could not run and measures the Rust worker alone.
rm -f target/release/c-examples/hello
if ! command -v cc >/dev/null; then
  echo "bench/run.sh: no cc: the capi scenario's C worker is not built" >&2
elif ! { cargo build --release -q -p pullman-capi && mkdir -p target/release/c-examples &&
  cc -std=c11 -O2 -Wall -Wextra -Werror -I crates/pullman-capi/include examples/c/hello.c \
    target/release/libpullman_capi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl \
    -o target/release/c-examples/hello; }; then
  echo "bench/run.sh: building examples/c/hello.c failed: the capi scenario skips the C worker" >&2
fi
# The scale scenario keeps 100,000 requests open; each is a stream, and 512 workers are
# processes with their sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
json=(--json docs/bench/results.json)
for a in "$@"; do [ "$a" = --scenario ] && json=(); done
exec target/release/pullman-bench run "${json[@]}" "$@"
