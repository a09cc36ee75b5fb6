"""One request through a WSGI app: ``start_response``, the body iterable, the answer."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._errors import Closed
from .._interface import Header, Request
from .environ import build_environ

log = logging.getLogger("pullman.wsgi")

ERROR_BODY = b"Internal Server Error\n"
ERROR_HEADERS = [("content-type", "text/plain; charset=utf-8")]

App = Callable[[Dict[str, Any], Callable[..., Any]], Any]


class _Answer:
    """The answer of one request: what ``start_response`` set and how far it has gone."""

    __slots__ = ("request", "is_head", "status", "headers", "is_head_sent", "is_done")

    def __init__(self, request: Request, is_head: bool) -> None:
        self.request = request
        self.is_head = is_head
        self.status: Optional[int] = None
        self.headers: List[Header] = []
        self.is_head_sent = False
        self.is_done = False

    def start_response(
        self, status: str, headers: List[Tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.is_head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        self.status = parse_status(status)
        # The names and values are checked (str, latin-1, valid fields) when they are sent.
        self.headers = list(headers)
        return self.write

    def content_length(self) -> Optional[int]:
        for name, value in self.headers:
            if name.lower() == "content-length":
                return int(value) if value.strip().isdigit() else None
        return None

    def send_head(self) -> None:
        if self.status is None:
            raise RuntimeError("the app sent body before calling start_response")
        self.request.start(self.status, self.headers)
        self.is_head_sent = True

    def write(self, data: bytes) -> None:
        """The callable ``start_response`` returns, and each block of a streamed body."""
        if not self.is_head_sent:
            self.send_head()
        if data:
            self.request.write(data)

    def respond(self, body: bytes) -> None:
        """The whole answer at once (``HEAD``: the head only, keeping the app's length)."""
        if self.status is None:
            raise RuntimeError("the app returned without calling start_response")
        if self.is_head:
            self.send_head()
            self.request.finish()
        else:
            self.request.respond(self.status, self.headers, body)
            self.is_head_sent = True
        self.is_done = True

    def finish(self) -> None:
        if not self.is_head_sent:
            self.send_head()
        self.request.finish()
        self.is_done = True


def parse_status(status: str) -> int:
    """The code of a WSGI status line such as ``"200 OK"``."""
    if type(status) is not str or not status[:3].isdigit() or status[3:4] not in (" ", ""):
        raise ValueError(f"a WSGI status is a str like '200 OK', not {status!r}")
    return int(status[:3])


def handle(app: App, request: Request, base: Dict[str, Any], proxies: Any = None) -> None:
    """Runs ``app`` for ``request`` and answers it, then closes the request.

    A body that is a plain list or tuple, or whose first block is as long as its
    ``content-length``, goes in one :meth:`Request.respond`; any other is streamed, each block
    sent as it comes (PEP 3333 forbids holding one back). The iterable's ``close`` is always
    called. An exception before the head is sent answers 500; after, the answer is aborted,
    so the client sees a truncated body rather than a complete wrong one. A request the hub
    cancelled ends quietly.
    """
    answer: Optional[_Answer] = None
    try:
        environ = build_environ(request, base, proxies)
        answer = _Answer(request, environ["REQUEST_METHOD"] == "HEAD")
        result = app(environ, answer.start_response)
        if type(result) in (list, tuple) and not answer.is_head_sent:
            # The usual case, one respond; a plain list or tuple has no close() to call.
            answer.respond(b"".join(result))
        else:
            try:
                _send(answer, result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        if not answer.is_done:
            answer.finish()
    except Closed:
        log.debug("request %s: cancelled by the hub", request.request_id)
    except Exception:
        if answer is not None and answer.is_head_sent:
            log.exception("request %s: app failed after the head was sent", request.request_id)
        else:
            log.exception("request %s: app failed", request.request_id)
            try:
                request.respond(500, ERROR_HEADERS, ERROR_BODY)
            except Closed:
                pass
    finally:
        request.close()


def _send(answer: _Answer, result: Any) -> None:
    for block in result:
        if answer.is_done:
            if block:
                log.warning(
                    "request %s: app sent more than its content-length; the rest is dropped",
                    answer.request.request_id,
                )
            continue
        if not block:
            continue
        if not answer.is_head_sent and len(block) == answer.content_length():
            answer.respond(block)
        else:
            answer.write(block)
    if not answer.is_done and not answer.is_head_sent:
        answer.respond(b"")
