import asyncio
import os
import signal
import threading
import time

import pytest
from fake import FakeRequest, FakeWorker

from pullman._native import Proxies
from pullman.asgi import Cycle, Runner, build_scope
from pullman.asgi.lifespan import Lifespan, LifespanFailed


def run_cycle(app, request, state=None, timeout=10):
    async def go():
        with __import__("concurrent.futures").futures.ThreadPoolExecutor(4) as executor:
            cycle = Cycle(request, asyncio.get_running_loop(), executor)
            await asyncio.wait_for(cycle.run(app, state), timeout)

    asyncio.run(go())
    assert request.closed.is_set()
    return request


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_scope():
    request = FakeRequest(
        method="get",
        target="/a%20b/%C3%A9?x=1&y=%2F",
        headers=[("Host", "example.com:8080"), ("X-Custom", "V"), ("x-forwarded-proto", "https")],
        peer="10.0.0.1:1234",
        request_id="rid-7",
        http_version="2",
    )
    scope = build_scope(request, {"db": "x"}, Proxies("10.0.0.1"))
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "2"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/a b/é"
    assert scope["raw_path"] == b"/a%20b/%C3%A9"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        (b"host", b"example.com:8080"),
        (b"x-custom", b"V"),
        (b"x-forwarded-proto", b"https"),
        (b"x-request-id", b"rid-7"),
    ]
    assert scope["client"] == ("10.0.0.1", 1234)
    assert scope["server"] == ("example.com", 8080)
    assert scope["state"] == {"db": "x"}
    assert scope["extensions"]["pullman"]["request_id"] == "rid-7"
    assert build_scope(FakeRequest(peer=""))["client"] is None
    # The same header from a client that is no trusted proxy is its own claim.
    assert build_scope(request, None, Proxies("10.0.0.2"))["scheme"] == "http"
    assert build_scope(request)["scheme"] == "http"
    # A client that came to the hub's TLS listener is https on the hub's word.
    assert build_scope(FakeRequest(tls=True))["scheme"] == "https"
    assert "state" not in build_scope(FakeRequest())


def test_hello_is_one_respond():
    request = run_cycle(hello, FakeRequest())
    assert (request.state, request.status, bytes(request.body)) == ("responded", 200, b"hello")
    assert request.header("content-type") == "text/plain"


def test_a_bodiless_get_is_not_read():
    messages = []

    async def app(scope, receive, send):
        messages.append(await receive())
        await hello(scope, receive, send)

    request = run_cycle(app, FakeRequest())
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]
    assert request.reads == 0


def test_streaming_both_ways():
    data = os.urandom(5 * 1024 * 1024)
    chunks = [data[i : i + 70001] for i in range(0, len(data), 70001)]

    async def echo(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            await send({"type": "http.response.body", "body": message["body"], "more_body": True})
            if not message["more_body"]:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    for headers in ([("transfer-encoding", "chunked")], [("content-length", str(len(data)))]):
        request = run_cycle(echo, FakeRequest(method="POST", headers=headers, chunks=chunks))
        assert request.state == "finished"
        assert bytes(request.body) == data
        assert request.writes == chunks


def test_a_large_single_body_is_one_respond():
    big = b"x" * (1 << 20)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": big})

    request = run_cycle(app, FakeRequest())
    assert (request.state, len(request.body)) == ("responded", len(big))


def test_disconnect_when_the_hub_cancels():
    seen = []
    request = FakeRequest()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tick", "more_body": True})
        assert (await receive())["more_body"] is False
        threading.Timer(0.05, request.cancel).start()
        seen.append(await receive())
        # Spec 2.4: a send after a disconnect raises an OSError.
        with pytest.raises(OSError):
            await send({"type": "http.response.body", "body": b"more", "more_body": True})

    run_cycle(app, request)
    assert seen == [{"type": "http.disconnect"}]
    assert bytes(request.body) == b"tick"
    assert request.state == "aborted"


def test_a_closed_write_ends_the_app_quietly(caplog):
    request = FakeRequest()
    after = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        request.cancelled = True
        await send({"type": "http.response.body", "body": b"b", "more_body": True})
        after.append("not reached")

    run_cycle(app, request)
    assert after == []
    assert "app failed" not in caplog.text


def test_a_closed_read_is_a_disconnect():
    request = FakeRequest(method="POST", headers=[("content-length", "10")], chunks=[b"12345"])
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        request.cancelled = True  # as if the client left mid-upload
        seen.append(await receive())

    run_cycle(app, request)
    assert seen == [{"type": "http.request", "body": b"12345", "more_body": True}, {"type": "http.disconnect"}]


def test_receive_after_the_response_is_a_disconnect():
    seen = []

    async def app(scope, receive, send):
        await receive()
        await hello(scope, receive, send)
        seen.append(await receive())

    run_cycle(app, FakeRequest())
    assert seen == [{"type": "http.disconnect"}]


def test_app_errors():
    async def before(scope, receive, send):
        raise RuntimeError("before")

    request = run_cycle(before, FakeRequest())
    assert (request.state, request.status, bytes(request.body)) == ("responded", 500, b"Internal Server Error\n")

    async def after(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("after")

    assert run_cycle(after, FakeRequest()).state == "aborted"

    async def silent(scope, receive, send):
        pass

    assert run_cycle(silent, FakeRequest()).state == "failed"  # closed unanswered: 500

    async def body_first(scope, receive, send):
        await send({"type": "http.response.body", "body": b"x"})

    assert run_cycle(body_first, FakeRequest()).status == 500


def test_head_keeps_the_apps_length():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"99")]})
        await send({"type": "http.response.body", "body": b""})

    request = run_cycle(app, FakeRequest(method="HEAD"))
    assert (request.state, request.header("content-length"), bytes(request.body)) == ("finished", "99", b"")


# -- lifespan

def lifespan_app(events, fail_startup=False, fail_shutdown=False):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            assert (await receive())["type"] == "lifespan.startup"
            events.append("startup")
            scope["state"]["started"] = True
            if fail_startup:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            events.append("shutdown")
            if fail_shutdown:
                await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return
        events.append(("request", scope["state"].get("started")))
        await hello(scope, receive, send)

    return app


def drain_when_closed(worker, requests):
    def wait():
        for request in requests:
            request.closed.wait(10)
        worker.drain()

    threading.Thread(target=wait).start()


def test_runner_lifespan_around_requests():
    events = []
    worker = FakeWorker()
    requests = [worker.submit(FakeRequest()) for _ in range(3)]
    drain_when_closed(worker, requests)
    assert Runner(lifespan_app(events), worker, limit=4).run() == 0
    assert events[0] == "startup" and events[-1] == "shutdown"
    assert events[1:-1] == [("request", True)] * 3
    assert all(r.state == "responded" for r in requests)
    assert worker.is_closed


def test_runner_startup_failure_exits_1_without_connecting(caplog):
    worker = FakeWorker()
    assert Runner(lifespan_app([], fail_startup=True), worker, limit=1).run() == 1
    assert not worker.connected
    assert "no database" in caplog.text


def test_shutdown_failure_is_logged(caplog):
    worker = FakeWorker()
    worker.drain()
    assert Runner(lifespan_app([], fail_shutdown=True), worker, limit=1).run() == 0
    assert "flush failed" in caplog.text


def test_an_app_raising_on_lifespan_is_served_without_it():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("only http")
        await hello(scope, receive, send)

    async def go():
        lifespan = Lifespan(app)
        await lifespan.startup()
        assert not lifespan.is_supported
        await lifespan.shutdown()

    asyncio.run(go())
    worker = FakeWorker()
    requests = [worker.submit(FakeRequest())]
    drain_when_closed(worker, requests)
    assert Runner(app, worker, limit=1).run() == 0
    assert requests[0].state == "responded"


def test_runner_requests_run_concurrently_on_the_loop():
    worker = FakeWorker()

    async def app(scope, receive, send):
        await asyncio.sleep(0.2)
        await hello(scope, receive, send)

    requests = [worker.submit(FakeRequest()) for _ in range(20)]
    drain_when_closed(worker, requests)
    started = time.monotonic()
    assert Runner(app, worker, limit=20, lifespan=False).run() == 0
    assert time.monotonic() - started < 2
    assert all(r.state == "responded" for r in requests)


def test_runner_refused_exits_1():
    assert Runner(hello, FakeWorker(refuse="bad token"), limit=1, lifespan=False).run() == 1


def test_sigterm_drains_after_in_flight_requests():
    worker = FakeWorker()
    inside = threading.Event()

    async def app(scope, receive, send):
        inside.set()
        await asyncio.sleep(0.3)
        await hello(scope, receive, send)

    request = worker.submit(FakeRequest())

    def kill():
        inside.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=kill).start()
    assert Runner(app, worker, limit=2, lifespan=False).run() == 0
    assert worker.is_drained
    assert request.state == "responded"


def test_starlette_app():
    pytest.importorskip("starlette")
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    events = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield {"greeting": "hi"}
        events.append("shutdown")

    async def home(request):
        return JSONResponse({"greeting": request.state.greeting, "path": request.url.path, "q": request.query_params.get("q")})

    async def upload(request: StarletteRequest):
        async def back():
            async for chunk in request.stream():
                yield chunk.upper()

        return StreamingResponse(back(), media_type="text/plain")

    app = Starlette(routes=[Route("/", home), Route("/up", upload, methods=["POST"])], lifespan=lifespan)
    worker = FakeWorker()
    get = worker.submit(FakeRequest(target="/?q=1", headers=[("host", "h")]))
    post = worker.submit(FakeRequest(method="POST", target="/up", headers=[("host", "h"), ("transfer-encoding", "chunked")], chunks=[b"abc", b"def"]))
    missing = worker.submit(FakeRequest(target="/nope", headers=[("host", "h")]))
    drain_when_closed(worker, [get, post, missing])
    assert Runner(app, worker, limit=4).run() == 0
    import json
    assert (get.status, json.loads(bytes(get.body))) == (200, {"greeting": "hi", "path": "/", "q": "1"})
    assert (post.state, bytes(post.body)) == ("finished", b"ABCDEF")
    assert missing.status == 404
    assert events == ["startup", "shutdown"]
