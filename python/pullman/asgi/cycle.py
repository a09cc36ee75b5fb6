"""One request through an ASGI app: ``receive`` and ``send`` over the request.

Calls that may wait on the client (a body read, a write, a large ``respond``) run on the
runner's executor, never on the event loop; the rest (a small ``respond``, ``start``,
``finish``, ``close``) return at once and run inline.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable, Dict, Optional, Sequence

from .._errors import Closed
from .._interface import OutHeader, Request
from .scope import build_scope

log = logging.getLogger("pullman.asgi")

INLINE_RESPOND_MAX = 64 * 1024
"""Largest body answered with ``respond`` on the event loop: it fits the link's first window,
so the call only queues it. Larger ones go through the executor, as writes do."""

ERROR_BODY = b"Internal Server Error\n"
ERROR_HEADERS = [("content-type", "text/plain; charset=utf-8")]

DISCONNECT = {"type": "http.disconnect"}

App = Callable[[Dict[str, Any], Callable[[], Awaitable[Dict[str, Any]]], Callable[[Dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class Cycle:
    """The state of one request: how much body was read, how far the answer went, whether the
    request is gone."""

    def __init__(
        self, request: Request, loop: asyncio.AbstractEventLoop, executor: Optional[Executor], proxies: Any = None
    ) -> None:
        self.request = request
        self.proxies = proxies
        self.loop = loop
        self.executor = executor
        self.body_left = request.body_size
        # A body known empty needs no read (nor a thread to wait in it); the app still gets
        # one http.request.
        self.is_body_done = self.body_left == 0
        self._is_request_told = False
        self.status: Optional[int] = None
        self.headers: Sequence[OutHeader] = []
        self.is_head_sent = False
        self.is_done = False
        self.is_disconnected = False
        self._gone = asyncio.Event()
        on_close = getattr(request, "on_close", None)
        if on_close is not None:
            on_close(self._on_close_from_library)

    def _on_close_from_library(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._disconnect)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _disconnect(self) -> None:
        self.is_disconnected = True
        self._gone.set()

    async def _blocking(self, call: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, call, *args)

    async def receive(self) -> Dict[str, Any]:
        if self.is_disconnected or self.is_done:
            return DISCONNECT
        if self.is_body_done and not self._is_request_told:
            self._is_request_told = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if not self.is_body_done:
            self._is_request_told = True
            try:
                chunk = await self._blocking(self.request.read)
            except Closed:
                self._disconnect()
                return DISCONNECT
            if self.body_left is not None:
                self.body_left -= len(chunk)
            # The read of b"" after a body whose length was known would only cost a thread hop.
            if not chunk or self.body_left == 0:
                self.is_body_done = True
            return {"type": "http.request", "body": chunk, "more_body": not self.is_body_done}
        # After the body: wait for the request to go, or for the answer to end.
        await self._gone.wait()
        return DISCONNECT

    async def send(self, message: Dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            # Pairs of bytes, which the native answer takes as they are.
            headers = message.get("headers", ())
            self.headers = headers if isinstance(headers, (list, tuple)) else list(headers)
            return
        if kind != "http.response.body":
            raise ValueError(f"unexpected ASGI message {kind!r} on an http connection")
        if self.status is None:
            raise RuntimeError("http.response.body before http.response.start")
        if self.is_done:
            raise RuntimeError("http.response.body after the response ended")
        if self.is_disconnected:
            raise Closed("the request is gone")  # spec 2.4: an OSError
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        try:
            await self._send_body(body, more)
        except Closed:
            self._disconnect()
            raise

    async def _send_body(self, body: bytes, more: bool) -> None:
        request = self.request
        if not self.is_head_sent:
            if not more and request.method != "HEAD":
                self.is_head_sent = True
                if len(body) <= INLINE_RESPOND_MAX:
                    request.respond(self.status, self.headers, body)
                else:
                    await self._blocking(request.respond, self.status, self.headers, body)
                self._end()
                return
            request.start(self.status, self.headers)
            self.is_head_sent = True
        if body and request.method != "HEAD":
            await self._blocking(request.write, body)
        if not more:
            request.finish()
            self._end()

    def _end(self) -> None:
        self.is_done = True
        self._gone.set()

    async def run(self, app: App, state: Optional[Dict[str, Any]]) -> None:
        """Runs ``app`` on this request to its end, then closes the request. An exception
        before the head answers 500; one after it (or an app that returns mid-answer) aborts
        the answer."""
        request = self.request
        try:
            await app(build_scope(request, state, self.proxies), self.receive, self.send)
        except Closed:
            log.debug("request %s: gone before the app finished", request.request_id)
        except Exception:
            log.exception("request %s: app failed", request.request_id)
            if not self.is_head_sent and not self.is_disconnected:
                try:
                    request.respond(500, ERROR_HEADERS, ERROR_BODY)
                except Closed:
                    pass
                self._end()
        else:
            if not self.is_done and not self.is_disconnected:
                log.error(
                    "request %s: app returned without %s the response",
                    request.request_id,
                    "finishing" if self.is_head_sent else "starting",
                )
        finally:
            self._end()
            request.close()

