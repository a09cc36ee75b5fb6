#!/usr/bin/env bash
# /hello through a pass-through filter (hub + one demo-filter worker) to an upstream, against
# the upstream directly and nginx proxying to the same upstream, in alternating rounds of
# the same run. The upstream is `pullman-bench direct`. nginx keeps upstream connections
# alive (keepalive 64), as the hub's client does.
# BASELINE=PATH adds a second hub and worker run from another pullman binary (an older
# build, say), measured in the same rounds: a before/after comparison in one run.
# Usage: [HUB_THREADS=N] [NGINX_WORKERS=N] [APP=demo-filter] [UPSTREAM_SCHEME=http|h2c] [BASELINE=PATH] bench/filter.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-10} conns=${3:-32}
nginx=${NGINX:-/usr/sbin/nginx}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -x "$nginx" ] || { echo "nginx is needed at $nginx (or set NGINX)" >&2; exit 1; }
cargo build --release -q -p pullman -p pullman-bench
bin=target/release
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

$bin/pullman-bench direct > "$dir/direct.out" & pids+=($!)
for _ in $(seq 100); do [ -s "$dir/direct.out" ] && break; sleep 0.05; done
direct_url=$(sed -n 's/.*listening \(http:.*\)/\1/p' "$dir/direct.out")
upstream=${direct_url#http://}

cat > "$dir/hub.toml" <<TOML
[hub]
listen = "127.0.0.1:0"
workers_listen = ["tcp://127.0.0.1:0"]
[[pool]]
name = "bench"
token = "bench"
mode = "filter"
upstream = "${UPSTREAM_SCHEME:-http}://$upstream"
[[route]]
path_prefix = "/"
pool = "bench"
TOML
start_filter() { # name binary -> sets url_<name>
  PULLMAN_LOG=warn $2 hub ${HUB_THREADS:+--threads "$HUB_THREADS"} --config "$dir/hub.toml" > "$dir/$1.out" & pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/$1.out" ] && break; sleep 0.05; done
  local worker_addr
  worker_addr=$(sed -n 's/.*workers=\([^, ]*\).*/\1/p' "$dir/$1.out")
  PULLMAN_LOG=warn $2 worker --app "${APP:-demo-filter}" --hub "$worker_addr" --pool bench --token bench --concurrency 64 & pids+=($!)
  printf -v "url_$1" '%s' "$(sed -n 's/.*front=\(http:[^ ]*\).*/\1/p' "$dir/$1.out")"
}
start_filter hub $bin/pullman
hub_url=$url_hub
if [ -n "${BASELINE:-}" ]; then
  start_filter baseline "$BASELINE"
  curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$url_baseline/hello" >/dev/null
fi

# nginx needs a fixed port: take one the kernel hands out and give it back.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/nginx/logs"
cat > "$dir/nginx/nginx.conf" <<CONF
daemon off;
worker_processes ${NGINX_WORKERS:-auto};
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  upstream up { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
$nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" & pids+=($!)
nginx_url="http://127.0.0.1:$nginx_port"
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$hub_url/hello" >/dev/null
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$nginx_url/hello" >/dev/null

run() { # name url -> "name req/s p99"
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$2/hello" > "$dir/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.txt")
  echo "$1 $rps $p99"
}
echo "round system req_per_s p99 (wrk -t1 -c$conns -d${secs}s, hub threads ${HUB_THREADS:-default}, nginx workers ${NGINX_WORKERS:-auto}, filter app ${APP:-demo-filter})"
for r in $(seq "$rounds"); do
  d=$(run direct "$direct_url"); n=$(run nginx "$nginx_url"); f=$(run pullman-filter "$hub_url")
  echo "$r $d"; echo "$r $n"; echo "$r $f"
  if [ -n "${BASELINE:-}" ]; then
    b=$(run baseline-filter "$url_baseline"); echo "$r $b"
    awk -v r="$r" -v n="${n#* }" -v b="${b#* }" 'BEGIN { split(n, a, " "); split(b, c, " "); printf "%s ratio baseline-filter/nginx %.3f\n", r, c[1]/a[1] }'
  fi
  awk -v r="$r" -v n="${n#* }" -v f="${f#* }" -v d="${d#* }" 'BEGIN { split(n, a, " "); split(f, b, " "); split(d, c, " "); printf "%s ratio filter/nginx %.3f  nginx/direct %.3f  filter/direct %.3f\n", r, b[1]/a[1], a[1]/c[1], b[1]/c[1] }'
done
