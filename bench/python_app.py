"""The python scenario's app, as WSGI (`wsgi`) and as ASGI 3 (`asgi`), with no framework so
that the servers, not an app, are what is measured. Every server runs this module:
pullman's runners (`python -m pullman.wsgi python_app:wsgi`, `python -m pullman.asgi
python_app:asgi`), granian and gunicorn (`python_app:wsgi`), uvicorn (`python_app:asgi`).

- `/hello`: 200, a fixed plain-text body with its length: what the scenario measures.
- `/sleep?ms=N`: N ms, then `{"worker": NAME}` (`PYTHON_APP_NAME`): how pullman-bench sees
  that each pulling worker serves before it measures.
- anything else: 404.
"""

import asyncio
import json
import math
import os
import time
from urllib.parse import parse_qs

NAME = os.environ.get("PYTHON_APP_NAME", "python")
HELLO = b"hello from python\n"
HELLO_LENGTH = str(len(HELLO))
MAX_SLEEP_MS = 60_000


def _sleep_ms(query):
    try:
        ms = float(parse_qs(query).get("ms", ["0"])[0])
    except ValueError:
        ms = 0.0
    return min(max(ms, 0.0), MAX_SLEEP_MS) if math.isfinite(ms) else 0.0


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", HELLO_LENGTH)])
        return [HELLO]
    if path == "/sleep":
        time.sleep(_sleep_ms(environ.get("QUERY_STRING", "")) / 1000.0)
        body = json.dumps({"worker": NAME}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", HELLO_LENGTH.encode())]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/hello":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
        return
    if path == "/sleep":
        await asyncio.sleep(_sleep_ms(scope["query_string"].decode("latin-1")) / 1000.0)
        body = json.dumps({"worker": NAME}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
