#!/usr/bin/env bash
# What recording metrics costs: /hello req/s through one hub + one worker with
# [metrics] enabled = true and = false, toggled by POST /reload on the same hub process
# between rounds (so the build, the process, the worker and its link are the same), in
# alternating order so that drift on a noisy machine falls on both sides.
# Usage: [HUB_THREADS=N] bench/metrics_cost.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-10} conns=${3:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p pullman
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

config() { # enabled: true | false
  cat > "$dir/hub.toml" <<TOML
[hub]
listen = "127.0.0.1:0"
workers_listen = ["tcp://127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
token = "bench"
[metrics]
enabled = $1
[[pool]]
name = "bench"
token = "bench"
[[route]]
path_prefix = "/"
pool = "bench"
TOML
}
config true
PULLMAN_LOG=warn $bin/pullman hub ${HUB_THREADS:+--threads "$HUB_THREADS"} --config "$dir/hub.toml" > "$dir/hub.out" & pids+=($!)
for _ in $(seq 100); do [ -s "$dir/hub.out" ] && break; sleep 0.05; done
hub_url=$(sed -n 's/.*front=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
admin_url=$(sed -n 's/.*admin=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
worker_addr=$(sed -n 's/.*workers=\([^, ]*\).*/\1/p' "$dir/hub.out")
PULLMAN_LOG=warn $bin/pullman worker --hub "$worker_addr" --pool bench --token bench --concurrency 64 & pids+=($!)
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$hub_url/hello" >/dev/null

admin() { curl -sf -H "Authorization: Bearer bench" "$@"; }
counted() { admin "$admin_url/metrics" | awk '/^pullman_requests_total\{pool="bench",outcome="ok"\}/ {print $2}'; }
run() { # enabled -> "enabled req/s p99 counted"
  config "$1"
  admin -X POST "$admin_url/reload" >/dev/null
  before=$(counted)
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$hub_url/hello" > "$dir/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.txt")
  echo "$1 $rps $p99 $(( $(counted) - before ))"
}
echo "round metrics req_per_s p99 requests_counted (wrk -t1 -c$conns -d${secs}s, hub threads ${HUB_THREADS:-all cores}, worker threads 1)"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then a=$(run true); b=$(run false); on=$a off=$b; else b=$(run false); a=$(run true); on=$a off=$b; fi
  echo "$r $on"; echo "$r $off"
  awk -v r="$r" -v on="$on" -v off="$off" 'BEGIN { split(on, a, " "); split(off, b, " "); printf "%s ratio on/off %.3f\n", r, a[2]/b[2] }'
done
