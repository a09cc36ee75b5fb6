#!/usr/bin/env bash
# /hello through hub + one worker (concurrency 64) against a plain hyper server, in
# alternating rounds of the same run, so the ratio means something on a noisy machine.
# Usage: [HUB_THREADS=N] bench/hello.sh [ROUNDS] [SECONDS] [CONNECTIONS] [tcp|unix]
# HUB_THREADS defaults to the hub's own default (half the cores, at least one).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-10} conns=${3:-32} transport=${4:-tcp}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p pullman -p pullman-bench
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

case $transport in
  tcp) workers='tcp://127.0.0.1:0' ;;
  unix) workers="unix://$dir/w.sock" ;;
esac
cat > "$dir/hub.toml" <<TOML
[hub]
listen = "127.0.0.1:0"
workers_listen = ["$workers"]
[[pool]]
name = "bench"
token = "bench"
[[route]]
path_prefix = "/"
pool = "bench"
TOML
PULLMAN_LOG=warn $bin/pullman hub ${HUB_THREADS:+--threads "$HUB_THREADS"} --config "$dir/hub.toml" > "$dir/hub.out" & pids+=($!)
$bin/pullman-bench direct > "$dir/direct.out" & pids+=($!)
for _ in $(seq 100); do [ -s "$dir/hub.out" ] && [ -s "$dir/direct.out" ] && break; sleep 0.05; done
hub_url=$(sed -n 's/.*front=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
worker_addr=$(sed -n 's/.*workers=\([^, ]*\).*/\1/p' "$dir/hub.out")
direct_url=$(sed -n 's/.*listening \(http:.*\)/\1/p' "$dir/direct.out")
PULLMAN_LOG=warn $bin/pullman worker --hub "$worker_addr" --pool bench --token bench --concurrency 64 & pids+=($!)
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$hub_url/hello" >/dev/null

run() { # name url -> "req/s p99_ms"
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$2/hello" > "$dir/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.txt")
  echo "$1 $rps $p99"
}
echo "round system req_per_s p99 (wrk -t1 -c$conns -d${secs}s, worker over $transport, hub threads ${HUB_THREADS:-default}, worker threads 1)"
for r in $(seq "$rounds"); do
  d=$(run direct "$direct_url"); h=$(run pullman "$hub_url")
  echo "$r $d"; echo "$r $h"
  awk -v r="$r" -v d="${d#* }" -v h="${h#* }" 'BEGIN { split(d, a, " "); split(h, b, " "); printf "%s ratio pullman/direct %.3f\n", r, b[1]/a[1] }'
done
