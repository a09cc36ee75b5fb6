"""The package against the real hub: the WSGI runner serving a Flask app, the ASGI runner
serving a Starlette app, and a custom filter on ``pullman.Worker``, each in a process of its
own that uses the installed package (the other tests import the sources), behind a
``pullman hub`` started here on port 0.

The hub binary is ``$PULLMAN_BIN``, else the workspace's ``target/debug/pullman`` (which
``test.sh`` builds before it runs these) or ``target/release/pullman``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "py-token"
# Long enough for anything to happen on a loaded machine; a test waiting this long failed.
HANG_GUARD = 60


# Where they cannot run they are skipped, unless PULLMAN_REQUIRE_PYTHON=1 (.ci/run) makes
# that a failure.
REQUIRED = os.environ.get("PULLMAN_REQUIRE_PYTHON") == "1"


def cannot_run(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why} (PULLMAN_REQUIRE_PYTHON=1)")
    pytest.skip(why)


@pytest.fixture(autouse=True)
def installed_native() -> None:
    probe = "import pullman._native as n; n.Worker"
    if subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True).returncode != 0:
        cannot_run("the installed pullman has no native module (pip install ./python)")


def hub_binary() -> str:
    if os.environ.get("PULLMAN_BIN"):
        return os.environ["PULLMAN_BIN"]
    for profile in ("debug", "release"):
        path = ROOT / "target" / profile / "pullman"
        if path.exists():
            return str(path)
    cannot_run("no pullman binary in target/: cargo build first")
    raise AssertionError("unreachable")


class Upstream(ThreadingHTTPServer):
    """The filter pool's upstream: answers every request with what it saw, as JSON."""

    daemon_threads = True

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Hub:
    def __init__(self, tmp: Path, upstream: str) -> None:
        config = tmp / "hub.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [hub]
                listen = "127.0.0.1:0"
                workers_listen = ["tcp://127.0.0.1:0"]
                [[pool]]
                name = "py"
                token = "{TOKEN}"
                [[pool]]
                name = "flt"
                token = "{TOKEN}"
                mode = "filter"
                upstream = "{upstream}"
                [[route]]
                path_prefix = "/f/"
                pool = "flt"
                [[route]]
                pool = "py"
                """
            )
        )
        self.proc = subprocess.Popen(
            [hub_binary(), "hub", str(config)], stdout=subprocess.PIPE, stderr=open(tmp / "hub.log", "w"), text=True
        )
        # pullman listening front=http://ADDR workers=URL ...
        line = self.proc.stdout.readline()
        assert "front=http://" in line, f"the hub did not start: {(tmp / 'hub.log').read_text()}"
        self.front = line.split("front=http://")[1].split()[0]
        self.workers = line.split("workers=")[1].split()[0].split(",")[0]
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        host, port = self.front.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=HANG_GUARD)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data

    def wait_served(self, path: str) -> None:
        """Until a worker answers ``path`` (it dials in after it starts)."""
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            status, _, _ = self.request("GET", path)
            if status != 503 and status != 504:
                return
            time.sleep(0.05)
        raise AssertionError(f"no worker answered {path}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=HANG_GUARD)


@pytest.fixture
def hub(tmp_path: Path):
    upstream = Upstream()
    hub = Hub(tmp_path, f"http://127.0.0.1:{upstream.server_address[1]}")
    yield hub
    hub.stop()
    upstream.shutdown()


def start(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    """A Python process in `tmp_path` (where the test's app module is), with the installed
    package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=tmp_path, env=env, stderr=open(tmp_path / "worker.log", "a")
    )


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=HANG_GUARD)


FLASK_APP = """
import hashlib, time
from flask import Flask, Response, jsonify, request

app = Flask(__name__)

@app.get("/hello")
def hello():
    return Response("hello from flask\\n", headers={"x-custom": "yes"})

@app.post("/json")
def echo_json():
    return jsonify(got=request.get_json(), id=request.environ["HTTP_X_REQUEST_ID"]), 201

@app.post("/form")
def form():
    return jsonify(dict(request.form))

@app.post("/upload")
def upload():
    digest, size = hashlib.sha256(), 0
    while True:
        chunk = request.stream.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest())

@app.get("/stream")
def stream():
    return Response((f"part {i}\\n" for i in range(100)), mimetype="text/plain")

@app.get("/big")
def big():
    # Streamed: the runner learns its length only by reading it.
    return Response((bytes([i]) * 4096 for i in range(64)), mimetype="application/octet-stream")

@app.get("/sleep")
def sleep():
    time.sleep(float(request.args["s"]))
    return "slept\\n"
"""


def test_a_flask_app_is_served_whole_through_the_hub(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "flask_app.py").write_text(FLASK_APP)
    worker = start(
        tmp_path,
        ["-m", "pullman.wsgi", "--hub", hub.workers, "--pool", "py", "--token", TOKEN, "--threads", "4", "flask_app:app"],
    )
    try:
        hub.wait_served("/hello")
        status, headers, body = hub.request("GET", "/hello")
        assert (status, body, headers["x-custom"]) == (200, b"hello from flask\n", "yes")

        status, headers, body = hub.request(
            "POST", "/json", json.dumps({"a": [1, 2]}).encode(), {"content-type": "application/json"}
        )
        assert status == 201
        assert json.loads(body) == {"got": {"a": [1, 2]}, "id": headers["x-request-id"]}

        status, _, body = hub.request(
            "POST", "/form", b"name=pull+man&x=%26", {"content-type": "application/x-www-form-urlencoded"}
        )
        assert (status, json.loads(body)) == (200, {"name": "pull man", "x": "&"})

        upload = os.urandom(5 << 20)
        status, _, body = hub.request("POST", "/upload", upload)
        assert status == 200
        assert json.loads(body) == {"size": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}

        status, _, body = hub.request("GET", "/stream")
        assert (status, body) == (200, "".join(f"part {i}\n" for i in range(100)).encode())

        status, _, _ = hub.request("GET", "/nowhere")
        assert status == 404
    finally:
        assert stop(worker) == 0


def test_sigterm_drains_the_wsgi_runner_without_losing_a_request(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "flask_app.py").write_text(FLASK_APP)
    worker = start(
        tmp_path,
        # Two run, two wait in the process (prefetched): those must be served too.
        ["-m", "pullman.wsgi", "--hub", hub.workers, "--pool", "py", "--token", TOKEN]
        + ["--threads", "2", "--prefetch", "2", "flask_app:app"],
    )
    hub.wait_served("/hello")
    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(hub.request, "GET", "/sleep?s=1") for _ in range(4)]
        time.sleep(0.3)  # the four are taken (the assertion does not depend on it)
        worker.send_signal(signal.SIGTERM)
        results = [a.result(timeout=HANG_GUARD) for a in answers]
    assert [(status, body) for status, _, body in results] == [(200, b"slept\n")] * 4
    assert worker.wait(timeout=HANG_GUARD) == 0


BIG = b"".join(bytes([i]) * 4096 for i in range(64))


def fetch(url: str):
    """GET an absolute http:// URL: status and body."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, port = host_port.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=HANG_GUARD)
    conn.request("GET", "/" + path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_a_runner_in_redirect_mode_sends_large_bodies_past_the_hub(runner: str, hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "flask_app.py").write_text(FLASK_APP)
    (tmp_path / "star_app.py").write_text(STARLETTE_APP)
    app = {"wsgi": "flask_app:app", "asgi": "star_app:app"}[runner]
    worker = start(
        tmp_path,
        ["-m", f"pullman.{runner}", "--hub", hub.workers, "--pool", "py", "--token", TOKEN]
        + ["--redirect-response", "0", "--redirect-min-bytes", "65536", app],
    )
    try:
        hub.wait_served("/hello")
        status, _, body = hub.request("GET", "/hello")
        assert status == 200 and body.startswith(b"hello from flask" if runner == "wsgi" else b"started"), (
            "a small body comes through the hub"
        )

        status, headers, body = hub.request("GET", "/big")
        assert (status, body) == (303, b"")
        location = headers["location"]
        assert location.startswith("http://127.0.0.1:")
        assert fetch(location) == (200, BIG)
        assert fetch(location)[0] == 404, "a parked response is served once"

        status, _, body = hub.request("HEAD", "/big")
        assert status == 200, "HEAD is answered directly"
    finally:
        assert stop(worker) == 0


def test_a_runner_refuses_contradictory_redirect_settings(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "flask_app.py").write_text(FLASK_APP)
    # A unix:// hub gives no address of the worker to send clients to.
    worker = start(
        tmp_path,
        ["-m", "pullman.wsgi", "--hub", "unix:///nowhere.sock", "--pool", "py", "--token", TOKEN]
        + ["--redirect-response", "0", "flask_app:app"],
    )
    assert worker.wait(timeout=HANG_GUARD) == 1
    assert "redirect host" in (tmp_path / "worker.log").read_text()


FILTER = """
import signal, sys
import pullman

worker = pullman.Worker(sys.argv[1], "flt", sys.argv[2], concurrency=2, mode="filter")
worker.connect()
# next() looks for signals while it waits: the handler drains, and the loop ends.
signal.signal(signal.SIGTERM, lambda *_: worker.drain())
for req in worker.requests():
    with req:
        if req.path == "/f/blocked":
            req.block(403, [("x-why", "blocked by the filter")], b"no\\n")
        else:
            req.pass_(set_headers=[("x-filtered", "1")], remove_headers=["x-secret"])
"""


def test_a_custom_filter_passes_and_blocks(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "filter.py").write_text(FILTER)
    worker = start(tmp_path, ["filter.py", hub.workers, TOKEN])
    try:
        hub.wait_served("/f/blocked")
        status, headers, body = hub.request("GET", "/f/blocked")
        assert (status, headers["x-why"], body) == (403, "blocked by the filter", b"no\n")

        status, _, body = hub.request("GET", "/f/ok?q=1", headers={"x-secret": "s"})
        assert status == 200
        seen = json.loads(body)
        assert seen["path"] == "/f/ok?q=1"
        assert seen["headers"]["x-filtered"] == "1"
        assert "x-secret" not in seen["headers"]
    finally:
        assert stop(worker) == 0


STARLETTE_APP = """
import asyncio, pathlib
from contextlib import asynccontextmanager
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

@asynccontextmanager
async def lifespan(app):
    yield {"greeting": "started"}
    pathlib.Path("shutdown.txt").write_text("done")

async def hello(request):
    return PlainTextResponse(request.state.greeting + "\\n")

async def echo(request):
    async def back():
        async for chunk in request.stream():
            yield chunk
    return StreamingResponse(back())

async def forever(request):
    async def ticks():
        try:
            while True:
                yield b"tick\\n" * 1000
                await asyncio.sleep(0.01)
        finally:
            pathlib.Path("gone.txt").write_text("client left")
    return StreamingResponse(ticks())

async def big(request):
    async def parts():
        for i in range(64):
            yield bytes([i]) * 4096
    return StreamingResponse(parts(), media_type="application/octet-stream")

app = Starlette(routes=[Route("/hello", hello), Route("/echo", echo, methods=["POST"]),
                        Route("/forever", forever), Route("/big", big)], lifespan=lifespan)


async def waiting(scope, receive, send):
    # A plain ASGI app that reads the request, then waits for the client to leave.
    if scope["type"] != "http":
        return
    while (await receive())["type"] != "http.disconnect":
        pass
    pathlib.Path("disconnected.txt").write_text("seen")
"""


def test_a_starlette_app_streams_both_ways_sees_its_client_leave_and_its_lifespan(
    hub: Hub, tmp_path: Path
) -> None:
    (tmp_path / "star_app.py").write_text(STARLETTE_APP)
    worker = start(
        tmp_path,
        ["-m", "pullman.asgi", "--hub", hub.workers, "--pool", "py", "--token", TOKEN, "--limit", "8", "star_app:app"],
    )
    hub.wait_served("/hello")
    status, _, body = hub.request("GET", "/hello")
    assert (status, body) == (200, b"started\n"), "the lifespan's state reaches the request"

    upload = os.urandom(3 << 20)
    status, _, body = hub.request("POST", "/echo", upload)
    assert status == 200 and body == upload

    host, port = hub.front.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=HANG_GUARD)
    conn.request("GET", "/forever")
    resp = conn.getresponse()
    assert resp.read(50_000).startswith(b"tick\n")
    conn.close()
    deadline = time.monotonic() + HANG_GUARD
    while not (tmp_path / "gone.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "gone.txt").exists(), "the app's stream never learned the client left"

    assert stop(worker) == 0
    assert (tmp_path / "shutdown.txt").read_text() == "done", "lifespan shutdown ran"


FASTAPI_APP = """
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()

class Item(BaseModel):
    name: str
    price: float

@app.get("/items/{item_id}")
async def read(item_id: int, q: str = "", request: Request = None):
    if item_id == 0:
        raise HTTPException(status_code=404, detail="no item 0")
    return {"id": item_id, "q": q, "scheme": request.url.scheme, "rid": request.headers["x-request-id"]}

@app.post("/items", status_code=201)
async def create(item: Item):
    return {"name": item.name.upper(), "price": item.price * 2}

@app.get("/count")
async def count():
    async def numbers():
        for i in range(1000):
            yield f"{i}\\n".encode()
    return StreamingResponse(numbers(), media_type="text/plain")
"""


def test_a_fastapi_app_is_served_through_the_hub(hub: Hub, tmp_path: Path) -> None:
    if importlib.util.find_spec("fastapi") is None:
        cannot_run("fastapi is not installed (.ci/run installs it)")
    (tmp_path / "fast_app.py").write_text(FASTAPI_APP)
    worker = start(
        tmp_path,
        ["-m", "pullman.asgi", "--hub", hub.workers, "--pool", "py", "--token", TOKEN, "--limit", "8", "fast_app:app"],
    )
    try:
        hub.wait_served("/items/1")
        status, headers, body = hub.request("GET", "/items/7?q=x", headers={"x-forwarded-proto": "https"})
        assert status == 200
        # The client is 127.0.0.1, a trusted proxy by default: its word on the scheme counts.
        assert json.loads(body) == {"id": 7, "q": "x", "scheme": "https", "rid": headers["x-request-id"]}

        status, _, body = hub.request("GET", "/items/0")
        assert (status, json.loads(body)) == (404, {"detail": "no item 0"})
        status, _, _ = hub.request("GET", "/items/seven")
        assert status == 422, "FastAPI's own validation answers"

        item = json.dumps({"name": "pull", "price": 1.5}).encode()
        status, _, body = hub.request("POST", "/items", item, {"content-type": "application/json"})
        assert (status, json.loads(body)) == (201, {"name": "PULL", "price": 3.0})

        status, _, body = hub.request("GET", "/count")
        assert (status, body) == (200, "".join(f"{i}\n" for i in range(1000)).encode())
    finally:
        assert stop(worker) == 0


def test_an_asgi_app_waiting_in_receive_hears_its_client_leave(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "star_app.py").write_text(STARLETTE_APP)
    worker = start(
        tmp_path,
        ["-m", "pullman.asgi", "--hub", hub.workers, "--pool", "py", "--token", TOKEN, "star_app:waiting"],
    )
    try:
        # The app answers nothing; a client that gives up gets the hub's 504 meanwhile.
        host, port = hub.front.rsplit(":", 1)
        deadline = time.monotonic() + HANG_GUARD
        while not (tmp_path / "disconnected.txt").exists() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection(host, int(port), timeout=0.5)
            conn.request("POST", "/wait", body=b"x" * 10)
            try:
                conn.getresponse()
            except OSError:
                pass  # gave up: the client leaves
            conn.close()
            time.sleep(0.2)
        assert (tmp_path / "disconnected.txt").exists(), "http.disconnect never reached receive()"
    finally:
        assert stop(worker) == 0


def make_certificate(tmp: Path, stem: str, san: str, ca: str | None) -> None:
    """``stem.pem`` and ``stem.key``: a certificate for ``san`` (``DNS:...`` or ``URI:...``)
    signed by ``ca`` (a stem), or a CA of its own when ``ca`` is None; with openssl."""
    if shutil.which("openssl") is None:
        cannot_run("no openssl to make the test's certificates")
    run = lambda *args: subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)  # noqa: E731
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{stem}.key"]
    if ca is None:
        run("req", "-x509", *key, "-out", f"{stem}.pem", "-subj", f"/CN={stem}", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        return
    run("req", *key, "-out", f"{stem}.csr", "-subj", f"/CN={stem}")
    (tmp / f"{stem}.ext").write_text(f"subjectAltName={san}\n")
    run("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{stem}.pem", "-days", "2", "-extfile", f"{stem}.ext")


def test_a_wsgi_runner_serves_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    make_certificate(tmp_path, "ca", "", None)
    make_certificate(tmp_path, "hub", "DNS:localhost", "ca")
    make_certificate(tmp_path, "worker", "URI:spiffe://test/py", "ca")
    (tmp_path / "hub.toml").write_text(
        textwrap.dedent(
            f"""
            [hub]
            listen = "127.0.0.1:0"
            workers_listen = ["tls://127.0.0.1:0"]
            [hub.worker_tls]
            certificates = [{{ cert = "{tmp_path}/hub.pem", key = "{tmp_path}/hub.key" }}]
            client_ca = "{tmp_path}/ca.pem"
            [[pool]]
            name = "secure"
            token = "{TOKEN}"
            allowed_workers = ["spiffe://test/py"]
            [[route]]
            pool = "secure"
            """
        )
    )
    proc = subprocess.Popen(
        [hub_binary(), "hub", str(tmp_path / "hub.toml")],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "hub.log", "w"), text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "front=http://" in line, (tmp_path / "hub.log").read_text()
        front = line.split("front=http://")[1].split()[0]
        port = line.split("workers=tls://")[1].split()[0].rsplit(":", 1)[1]
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        (tmp_path / "tlsapp.py").write_text(
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [('content-type', 'text/plain')])\n"
            "    return [b'hello over tls\\n']\n"
        )
        base = ["-m", "pullman.wsgi", "--hub", f"tls://localhost:{port}", "--pool", "secure", "--token", TOKEN]
        # Without its certificate the worker is refused, and says why.
        (tmp_path / "worker.log").write_text("")
        anonymous = start(tmp_path, [*base, "--tls-ca", "ca.pem", "tlsapp:app"])
        assert anonymous.wait(timeout=HANG_GUARD) != 0
        assert "presented none" in (tmp_path / "worker.log").read_text()
        worker = start(tmp_path, [*base, "--tls-ca", "ca.pem", "--tls-cert", "worker.pem", "--tls-key", "worker.key", "tlsapp:app"])
        try:
            host, front_port = front.rsplit(":", 1)
            deadline = time.monotonic() + HANG_GUARD
            while True:
                conn = http.client.HTTPConnection(host, int(front_port), timeout=HANG_GUARD)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status not in (503, 504) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert (resp.status, body) == (200, b"hello over tls\n"), (tmp_path / "worker.log").read_text()
        finally:
            assert stop(worker) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=HANG_GUARD)
