import io
import logging
import os
import signal
import sys
import threading
import time

import pytest
from fake import FakeRequest, FakeWorker

from pullman._native import Proxies
from pullman.wsgi import FileWrapper, Runner, base_environ, build_environ, handle
from pullman.wsgi.input import Input

BASE = base_environ(multithread=True)


def serve(app, request):
    handle(app, request, BASE)
    assert request.closed.is_set()
    return request


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


# -- environ

def test_environ_has_every_pep_3333_key():
    request = FakeRequest(
        method="POST",
        target="/a%20b/%C3%A9/%2F?x=1&y=%20",
        headers=[
            ("Host", "example.com:8443"),
            ("Content-Type", "application/json"),
            ("Content-Length", "2"),
            ("Accept", "text/html"),
            ("accept", "application/json"),
            ("X-Custom", "v"),
            ("X_Sneaky", "dropped"),
        ],
        peer="10.1.2.3:4567",
        request_id="abc123",
        http_version="1.1",
    )
    env = build_environ(request, BASE)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # Percent-decoded bytes, one character per byte (PEP 3333's latin-1 rule).
    assert env["PATH_INFO"] == "/a b/\xc3\xa9//"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/é//"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8443"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.1.2.3"
    assert env["REMOTE_PORT"] == "4567"
    assert env["HTTP_ACCEPT"] == "text/html, application/json"
    assert env["HTTP_X_CUSTOM"] == "v"
    assert "HTTP_X_SNEAKY" not in env
    assert env["HTTP_HOST"] == "example.com:8443"
    assert env["HTTP_X_REQUEST_ID"] == "abc123"
    assert env["pullman.request_id"] == "abc123"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.errors"] is sys.stderr
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.file_wrapper"] is FileWrapper
    assert all(isinstance(v, str) for k, v in env.items() if k.isupper())


def test_environ_defaults_and_forwarded_scheme():
    request = FakeRequest(target="/", headers=[("x-forwarded-proto", "https"), ("x-request-id", "hub-id")], peer="[::1]:9", http_version="2")
    env = build_environ(request, BASE, Proxies("127.0.0.1, ::1"))
    assert env["wsgi.url_scheme"] == "https"
    # From a client that is no trusted proxy, the header is the client's own claim.
    for proxies in (None, Proxies(""), Proxies("10.0.0.1")):
        assert build_environ(request, BASE, proxies)["wsgi.url_scheme"] == "http"
        assert build_environ(request, BASE, proxies)["SERVER_PORT"] == "80"
    assert build_environ(request, BASE, Proxies("*"))["wsgi.url_scheme"] == "https"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "443")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("::1", "9")
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["QUERY_STRING"] == ""
    assert env["HTTP_X_REQUEST_ID"] == "hub-id"
    assert "CONTENT_LENGTH" not in env
    # A client that came to the hub's TLS listener is https on the hub's word, no proxy needed.
    over_tls = build_environ(FakeRequest(tls=True, headers=[("Host", "example.com")]), BASE)
    assert (over_tls["wsgi.url_scheme"], over_tls["SERVER_PORT"]) == ("https", "443")
    no_peer = build_environ(FakeRequest(peer="", headers=[("Host", "[::1]")]), BASE)
    assert "REMOTE_ADDR" not in no_peer
    assert (no_peer["SERVER_NAME"], no_peer["SERVER_PORT"]) == ("::1", "80")


# -- wsgi.input

BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)


def chunked(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1, 4093, 65536, 1 << 20])
@pytest.mark.parametrize("read", [1, 7, 1000, 65537, 3 << 20])
def test_input_reads_5_mib_in_odd_sizes(chunk, read):
    # Millions of one-byte chunks or reads take seconds and show nothing more than 20 KB do.
    small = chunk == 1 or read < 1000
    expected = BIG[:20_011] if small else BIG
    source = chunked(expected, chunk)
    body = Input(FakeRequest(chunks=source))
    parts = []
    while True:
        part = body.read(read)
        if not part:
            break
        assert len(part) == read or len(b"".join(parts)) + len(part) == len(expected)
        parts.append(part)
    assert b"".join(parts) == expected
    assert body.read() == b"" and body.read(10) == b""


def test_input_read_all_readline_and_iteration():
    data = b"first line\nsecond\n\nno newline at the end"
    request = FakeRequest(chunks=chunked(data, 3))
    body = Input(request)
    assert body.readline() == b"first line\n"
    assert body.readline(3) == b"sec"
    assert body.readline() == b"ond\n"
    assert list(body) == [b"\n", b"no newline at the end"]
    assert body.readline() == b""
    body = Input(FakeRequest(chunks=chunked(data, 5)))
    assert body.read(2) == b"fi"
    assert body.read() == data[2:]
    body = Input(FakeRequest(chunks=chunked(data, 4)))
    assert body.readlines() == [b"first line\n", b"second\n", b"\n", b"no newline at the end"]
    body = Input(FakeRequest(chunks=chunked(data, 4)))
    assert body.readlines(12) == [b"first line\n", b"second\n"]


def test_input_reads_nothing_before_asked():
    request = FakeRequest(chunks=[b"abc", b"def"])
    Input(request)
    assert request.reads == 0
    body = Input(request)
    assert body.read(2) == b"ab"
    assert request.reads == 1


# -- answers

def test_hello_is_one_respond():
    request = serve(hello, FakeRequest())
    assert request.state == "responded"
    assert request.status == 200
    assert bytes(request.body) == b"hello"
    assert request.header("content-type") == "text/plain"


def test_a_generator_of_its_content_length_is_one_respond():
    def app(environ, start_response):
        start_response("201 Created", [("Content-Length", "5")])
        yield b"hello"

    request = serve(app, FakeRequest())
    assert (request.state, request.status, bytes(request.body)) == ("responded", 201, b"hello")


def test_a_generator_without_length_streams_each_block_as_it_comes():
    seen_before_second = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield b""
        yield b"one "
        seen_before_second.append(list(request.writes))
        yield b"two"

    request = FakeRequest()
    serve(app, request)
    assert request.state == "finished"
    assert request.writes == [b"one ", b"two"]
    assert seen_before_second == [[b"one "]]


def test_write_callable_then_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"a")
        write(b"b")
        return [b"c"]

    request = serve(app, FakeRequest())
    assert (request.state, bytes(request.body)) == ("finished", b"abc")


def test_empty_body_and_head():
    def app(environ, start_response):
        start_response("204 No Content", [])
        return iter(())

    request = serve(app, FakeRequest())
    assert (request.state, request.status, bytes(request.body)) == ("responded", 204, b"")

    def head(environ, start_response):
        start_response("200 OK", [("Content-Length", "1234")])
        return [b""]

    request = serve(head, FakeRequest(method="HEAD"))
    # The app's length stays: a HEAD answer tells the GET's.
    assert (request.state, request.header("content-length"), bytes(request.body)) == ("finished", "1234", b"")


class Closing:
    def __init__(self, blocks, fail_at=None):
        self.blocks = blocks
        self.fail_at = fail_at
        self.closed = 0

    def __iter__(self):
        for i, block in enumerate(self.blocks):
            if i == self.fail_at:
                raise RuntimeError("boom in the body")
            yield block

    def close(self):
        self.closed += 1


def test_close_is_called_on_success_failure_and_cancellation():
    for fail_at, state in [(None, "finished"), (0, "responded"), (1, "aborted")]:
        body = Closing([b"x", b"y"], fail_at)

        def app(environ, start_response):
            start_response("200 OK", [])
            return body

        request = serve(app, FakeRequest())
        assert body.closed == 1
        assert request.state == state
        if fail_at == 0:
            assert request.status == 500

    body = Closing([b"x", b"y"])
    request = FakeRequest()

    def cancelled(environ, start_response):
        start_response("200 OK", [])
        request.cancel()
        return body

    serve(cancelled, request)
    assert body.closed == 1


def test_app_error_before_the_head_is_500_and_logged(caplog):
    def app(environ, start_response):
        raise KeyError("missing")

    with caplog.at_level(logging.ERROR, logger="pullman.wsgi"):
        request = serve(app, FakeRequest(request_id="r-500"))
    assert (request.state, request.status) == ("responded", 500)
    assert bytes(request.body) == b"Internal Server Error\n"
    assert "r-500" in caplog.text and "KeyError" in caplog.text


def test_app_error_after_the_head_aborts():
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"partial"
        raise ValueError("late")

    request = serve(app, FakeRequest())
    assert request.state == "aborted"
    assert bytes(request.body) == b"partial"


def test_start_response_exc_info():
    def replaces(environ, start_response):
        start_response("200 OK", [("X-A", "1")])
        try:
            raise ValueError("x")
        except ValueError:
            start_response("503 Service Unavailable", [("X-B", "2")], sys.exc_info())
        return [b"sorry"]

    request = serve(replaces, FakeRequest())
    assert (request.status, request.response_headers[0]) == (503, ("X-B", "2"))

    raised = []

    def too_late(environ, start_response):
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise ValueError("after the head")
        except ValueError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except ValueError as error:
                raised.append(error)
                raise

    request = serve(too_late, FakeRequest())
    assert [str(e) for e in raised] == ["after the head"]
    assert request.state == "aborted"

    def twice(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    assert serve(twice, FakeRequest()).status == 500


def test_bad_status_or_headers_are_500():
    for status, headers in [("OK", []), (200, []), ("200 OK", [("X", 1)])]:
        def app(environ, start_response, status=status, headers=headers):
            start_response(status, headers)
            return [b"x"]

        assert serve(app, FakeRequest()).status == 500


def test_no_start_response_is_500():
    assert serve(lambda environ, start_response: [b"x"], FakeRequest()).status == 500


def test_file_wrapper_reads_blocks_and_closes(tmp_path):
    data = os.urandom(200_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    files = []

    def app(environ, start_response):
        start_response("200 OK", [])
        f = open(path, "rb")
        files.append(f)
        return environ["wsgi.file_wrapper"](f, 65536)

    request = serve(app, FakeRequest())
    assert bytes(request.body) == data
    assert [len(w) for w in request.writes] == [65536, 65536, 65536, 200_000 - 3 * 65536]
    assert files[0].closed


def test_flask_app():
    flask = pytest.importorskip("flask")
    app = flask.Flask("t")

    @app.route("/hello/<name>")
    def hello_name(name):
        return flask.jsonify(name=name, q=flask.request.args.get("q"), rid=flask.request.headers.get("X-Request-Id"))

    @app.route("/form", methods=["POST"])
    def form():
        return "%s=%s" % ("a", flask.request.form["a"]), 201, {"X-Out": "yes"}

    @app.route("/upload", methods=["POST"])
    def upload():
        data = flask.request.stream.read()
        return str(len(data))

    @app.route("/stream")
    def stream():
        return flask.Response((str(i).encode() for i in range(3)), mimetype="text/plain")

    r = serve(app, FakeRequest(target="/hello/w%C3%B6rld?q=1", headers=[("Host", "h")], request_id="id-9"))
    assert r.status == 200 and r.state == "responded"
    import json
    assert json.loads(bytes(r.body)) == {"name": "wörld", "q": "1", "rid": "id-9"}

    body = b"a=b+c"
    r = serve(app, FakeRequest(method="POST", target="/form", headers=[("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", str(len(body)))], chunks=[body[:2], body[2:]]))
    assert (r.status, bytes(r.body), r.header("x-out")) == (201, b"a=b c", "yes")

    r = serve(app, FakeRequest(method="POST", target="/upload", headers=[("Content-Length", str(len(BIG)))], chunks=chunked(BIG, 65521)))
    assert (r.status, bytes(r.body)) == (200, str(len(BIG)).encode())

    r = serve(app, FakeRequest(target="/stream"))
    assert (r.state, r.writes) == ("finished", [b"0", b"1", b"2"])

    r = serve(app, FakeRequest(target="/missing"))
    assert r.status == 404


# -- the runner

def slow_hello(environ, start_response):
    time.sleep(0.05)
    return hello(environ, start_response)


def drain_when_closed(worker, requests):
    def wait():
        for request in requests:
            request.closed.wait(10)
        worker.drain()

    threading.Thread(target=wait).start()


def test_runner_serves_on_threads_until_drained():
    worker = FakeWorker()
    requests = [worker.submit(FakeRequest(request_id=str(i))) for i in range(20)]
    drain_when_closed(worker, requests)
    started = time.monotonic()
    assert Runner(slow_hello, worker, threads=4).run() == 0
    assert time.monotonic() - started < 20 * 0.05  # in parallel
    assert all(r.state == "responded" for r in requests)
    assert worker.is_closed


def test_runner_max_requests_with_jitter_drains():
    worker = FakeWorker()
    for i in range(50):
        worker.submit(FakeRequest())
    runner = Runner(hello, worker, threads=1, max_requests=10, max_requests_jitter=5)
    assert 10 <= runner.request_limit <= 15
    assert runner.run() == 0
    assert runner.served == runner.request_limit
    assert worker.is_drained


def test_runner_refused_exits_1():
    assert Runner(hello, FakeWorker(refuse="unknown pool"), threads=2).run() == 1


def test_sigterm_drains_and_in_flight_requests_finish():
    worker = FakeWorker()
    in_app = threading.Barrier(3)

    def slow(environ, start_response):
        in_app.wait(5)
        time.sleep(0.3)
        return hello(environ, start_response)

    requests = [worker.submit(FakeRequest()) for _ in range(2)]

    def kill():
        in_app.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=kill).start()
    previous = signal.getsignal(signal.SIGTERM)
    assert Runner(slow, worker, threads=2).run() == 0
    assert worker.is_drained
    assert all(r.state == "responded" for r in requests)
    assert signal.getsignal(signal.SIGTERM) is previous
