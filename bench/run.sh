#!/usr/bin/env bash
# Runs the benchmark suite and writes docs/benchmarks.md and its plots (docs/bench/).
# Needs the peers installed by bench/setup.sh. The full run takes about 25 minutes on 2 cores.
# Usage: bench/run.sh [--quick] [--scenario NAME]... [--rounds N] [other pullman-bench run flags]
#   --quick            every scenario briefly, one round (a smoke check)
#   --scenario NAME    only this scenario (repeatable): overhead, expensive, hol, bodies, scale,
#                      transport, filter, pothead
#   --baseline PATH    a pullman binary from an older commit: overhead and filter also run
#                      pullman (TCP) and pullman filter from it, side by side with this build
#                      in the same rounds, and report this build's req/s over the baseline's
# A run of every scenario also writes all its records to docs/bench/results.json (each
# scenario's own records are always in docs/bench/NAME.json).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p pullman -p pullman-bench
# The scale scenario keeps 100,000 requests open; each is a stream, and 512 workers are
# processes with their sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
json=(--json docs/bench/results.json)
for a in "$@"; do [ "$a" = --scenario ] && json=(); done
exec target/release/pullman-bench run "${json[@]}" "$@"
