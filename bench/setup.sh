#!/usr/bin/env bash
# Installs the peers pullman is benchmarked against, on a fresh Debian/Ubuntu machine:
# nginx and HAProxy (apt; any service apt starts is stopped and disabled, the benchmark
# starts its own instances on loopback with generated configs), POTHEAD 0.10.6 and the
# versions it works with in a venv at bench/.venv, the Python servers of the python scenario
# and pullman's own Python package (built from python/) in the same venv, and the release
# binaries.
# Usage: bench/setup.sh            (root, or sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=()
[ "$(id -u)" = 0 ] || sudo_cmd=(sudo)

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v python3 >/dev/null || need+=(python3)
# Debian ships venv (with ensurepip) in a package of its own.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${need[@]}"
fi
# The benchmark runs its own nginx and HAProxy; the packaged services would only hold
# ports and CPU.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    "${sudo_cmd[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif command -v service >/dev/null; then
    "${sudo_cmd[@]}" service "$svc" stop >/dev/null 2>&1 || true
  fi
done

# POTHEAD: its hub needs these aiohttp/yarl/multidict versions; newer werkzeug waits 10 ms
# after each response in its worker.
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
fi
bench/.venv/bin/pip install -q --disable-pip-version-check \
  pothead==0.10.6 aiohttp==3.8.6 yarl==1.9.2 multidict==6.0.4 werkzeug==2.2.3
# The python scenario: the servers pullman's runners are measured against (uvicorn with
# httptools, its fast HTTP parser; no uvloop, so uvicorn runs asyncio's loop as pullman.asgi
# does), and the package itself (maturin builds its native module; about a minute).
bench/.venv/bin/pip install -q --disable-pip-version-check \
  granian==2.8.7 gunicorn==27.0.1 uvicorn==0.54.0 httptools==0.9.0 maturin==1.16.0
bench/.venv/bin/pip install -q --disable-pip-version-check ./python

cargo build --release -q -p pullman -p pullman-bench
versions=$(bench/.venv/bin/python -c 'import importlib.metadata as m, platform
print(", ".join(f"{p} {m.version(p)}" for p in ("pothead", "granian", "gunicorn", "uvicorn", "httptools", "pullman")), "on Python", platform.python_version())')
echo "setup done: nginx $(nginx -v 2>&1 | sed 's/.*\///'), haproxy $(haproxy -v | head -1 | awk '{print $3}'), $versions"
