"""The demo routes as a WSGI app, for POTHEAD's worker runner (the same routes as
pullman's demo worker and pullman-bench's server): /hello, /echo, /sleep?ms=N, /bytes?n=N,
and /status?code=N (that status, with a field of the app's own: `x-app: pothead`).
tests/pothead.rs runs it behind pullman's PTTH port.
Its concurrency is the runner's --workers. POTHEAD_APP_NAME names it in /sleep answers."""

import json
import math
import os
import time
from urllib.parse import parse_qs

NAME = os.environ.get("POTHEAD_APP_NAME", "pothead")
CHUNK = bytes(i % 251 for i in range(64 * 1024))
MAX_SLEEP_MS = 600_000
IN_PROGRESS = [0]


def _param(environ, key, kind=int):
    try:
        value = kind(parse_qs(environ.get("QUERY_STRING", "")).get(key, ["0"])[0])
    except ValueError:
        return 0
    return value if math.isfinite(value) else 0


def _bytes(n):
    while n > 0:
        take = min(n, len(CHUNK))
        yield CHUNK[:take]
        n -= take


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"hello from pullman\n"]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response(
            "200 OK",
            [
                ("Content-Type", environ.get("CONTENT_TYPE", "application/octet-stream")),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]
    if path == "/sleep":
        IN_PROGRESS[0] += 1
        try:
            # Decimal milliseconds, as the benchmark's traces send them (0.1 ms steps).
            time.sleep(min(max(_param(environ, "ms", float), 0.0), MAX_SLEEP_MS) / 1000.0)
            body = json.dumps({"worker": NAME, "inflight": IN_PROGRESS[0]}).encode()
        finally:
            IN_PROGRESS[0] -= 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/bytes":
        n = _param(environ, "n")
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))],
        )
        return _bytes(n)
    if path == "/status":
        code = _param(environ, "code")
        start_response(f"{code} Status {code}", [("Content-Type", "text/plain"), ("X-App", "pothead")])
        return [f"status {code}\n".encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"no such demo route\n"]
