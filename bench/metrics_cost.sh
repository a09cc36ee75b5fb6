#!/usr/bin/env bash
# What recording metrics costs: /hello req/s through one hub + one worker with
# [metrics] enabled = true and = false, toggled by POST /reload on the same hub process
# between rounds (so the build, the process, the worker and its link are the same), in
# alternating order so that drift on a noisy machine falls on both sides. Besides req/s it
# prints the hub's CPU time per request (utime + stime from /proc), which other load on a
# shared machine disturbs less than throughput.
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
hub_pid=$!
for _ in $(seq 100); do [ -s "$dir/hub.out" ] && break; sleep 0.05; done
hub_url=$(sed -n 's/.*front=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
admin_url=$(sed -n 's/.*admin=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
worker_addr=$(sed -n 's/.*workers=\([^, ]*\).*/\1/p' "$dir/hub.out")
PULLMAN_LOG=warn $bin/pullman worker --hub "$worker_addr" --pool bench --token bench --concurrency 64 & pids+=($!)
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$hub_url/hello" >/dev/null

admin() { curl -sf -H "Authorization: Bearer bench" "$@"; }
counted() { admin "$admin_url/metrics" | awk '/^pullman_requests_total\{pool="bench",outcome="ok"\}/ {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$hub_pid/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
run() { # enabled -> "enabled req/s p99 hub_cpu_us_per_req counted"
  config "$1"
  admin -X POST "$admin_url/reload" >/dev/null
  before=$(counted)
  t0=$(cpu_ticks)
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$hub_url/hello" > "$dir/wrk.txt"
  t1=$(cpu_ticks)
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.txt")
  total=$(awk '/requests in/ {print $1}' "$dir/wrk.txt")
  cpu=$(awk -v t=$((t1 - t0)) -v us="$tick_us" -v n="$total" 'BEGIN { printf "%.2f", t * us / n }')
  echo "$1 $rps $p99 $cpu $(( $(counted) - before ))"
}
echo "round metrics req_per_s p99 hub_cpu_us_per_req requests_counted (wrk -t1 -c$conns -d${secs}s, hub threads ${HUB_THREADS:-default}, worker threads 1)"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then a=$(run true); b=$(run false); on=$a off=$b; else b=$(run false); a=$(run true); on=$a off=$b; fi
  echo "$r $on"; echo "$r $off"
  awk -v r="$r" -v on="$on" -v off="$off" 'BEGIN { split(on, a, " "); split(off, b, " "); printf "%s ratio on/off req/s %.3f, hub cpu per request %.3f\n", r, a[2]/b[2], a[4]/b[4] }'
done
