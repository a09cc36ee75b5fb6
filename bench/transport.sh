#!/usr/bin/env bash
# The worker transports side by side, through one hub: three pools with one demo worker each
# (over TCP, a Unix socket, shared memory), chosen per request by an `x-via` header.
#  1. /hello req/s (wrk -c CONNS), transports in alternating rounds;
#  2. round-trip latency p50/p99 of POST /sink (one connection, requests back to back) with
#     1 KiB, 64 KiB and 1 MiB bodies, and the CPU the hub and that worker spent per request
#     (from /proc/PID/stat: less sensitive than latency to a noisy machine);
#  3. an idle shared-memory worker's CPU over 10 s, from /proc/PID/stat.
# Usage: [HUB_THREADS=N] bench/transport.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-5} conns=${3:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p pullman
bin=target/release/pullman
dir=$(mktemp -d)
pids=()
# Workers first (newest first), so none logs its hub going away.
cleanup() { for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

{
  echo "[hub]"
  echo 'listen = "127.0.0.1:0"'
  echo "workers_listen = [\"tcp://127.0.0.1:0\", \"unix://$dir/w.sock\"]"
  for via in tcp unix shm; do
    printf '[[pool]]\nname = "%s"\ntoken = "bench"\nmax_body_bytes = 16777216\n' "$via"
    printf '[[route]]\npath_prefix = "/"\nheader = { name = "x-via", value = "%s" }\npool = "%s"\n' "$via" "$via"
  done
} > "$dir/hub.toml"
PULLMAN_LOG=warn $bin hub ${HUB_THREADS:+--threads "$HUB_THREADS"} --config "$dir/hub.toml" > "$dir/hub.out" & pids+=($!)
for _ in $(seq 100); do [ -s "$dir/hub.out" ] && break; sleep 0.05; done
hub_url=$(sed -n 's/.*front=\(http:[^ ]*\).*/\1/p' "$dir/hub.out")
tcp_addr=$(sed -n 's/.*workers=\(tcp:[^,]*\),.*/\1/p' "$dir/hub.out")
worker() { PULLMAN_LOG=warn $bin worker --hub "$1" --pool "$2" --token bench --concurrency 64 ${3:-} & pids+=($!); }
hub_pid=${pids[0]}
declare -A wpid
worker "$tcp_addr" tcp; wpid[tcp]=${pids[-1]}
worker "unix://$dir/w.sock" unix; wpid[unix]=${pids[-1]}
worker "unix://$dir/w.sock" shm --shm; wpid[shm]=${pids[-1]}
shm_pid=${wpid[shm]}
tck=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for via in tcp unix shm; do
  curl -sf --retry 20 --retry-connrefused --retry-delay 0 -H "x-via: $via" "$hub_url/hello" >/dev/null
done

echo "## /hello req/s (wrk -t1 -c$conns -d${secs}s; hub threads ${HUB_THREADS:-default}, worker threads 1)"
echo "round transport req_per_s p50 p99"
for r in $(seq "$rounds"); do
  for via in tcp unix shm; do
    wrk -t1 -c"$conns" -d"${secs}s" --latency -H "x-via: $via" "$hub_url/hello" > "$dir/wrk.txt"
    awk -v r="$r" -v v="$via" '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print r, v, rps, p50, p99}' "$dir/wrk.txt"
  done
done

echo "## POST /sink round trip, one connection (wrk -t1 -c1 -d${secs}s)"
echo "body transport req_per_s p50 p99 hub_cpu_us_per_req worker_cpu_us_per_req"
for size in 1024 65536 1048576; do
  printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' "$size" > "$dir/post.lua"
  for via in tcp unix shm; do
    h0=$(ticks "$hub_pid"); w0=$(ticks "${wpid[$via]}")
    wrk -t1 -c1 -d"${secs}s" --latency -s "$dir/post.lua" -H "x-via: $via" "$hub_url/sink" > "$dir/wrk.txt"
    h1=$(ticks "$hub_pid"); w1=$(ticks "${wpid[$via]}")
    awk -v s="$size" -v v="$via" -v h=$((h1 - h0)) -v w=$((w1 - w0)) -v hz="$tck" \
      '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
       END {printf "%s %s %s %s %s %.0f %.0f\n", s, v, rps, p50, p99, h*1e6/hz/n, w*1e6/hz/n}' "$dir/wrk.txt"
  done
done

echo "## idle shared-memory worker, 10 s"
switches() { cat /proc/"$1"/task/*/status | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n}'; }
sleep 1
t0=$(ticks "$shm_pid"); s0=$(switches "$shm_pid"); start=$(date +%s.%N)
sleep 10
t1=$(ticks "$shm_pid"); s1=$(switches "$shm_pid"); end=$(date +%s.%N)
awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v hz="$tck" -v a="$start" -v b="$end" \
  'BEGIN { e = b - a; printf "cpu %d ticks of 1/%d s in %.2f s = %.3f%% of a core; %d context switches\n", t, hz, e, 100 * t / hz / e, s }'
