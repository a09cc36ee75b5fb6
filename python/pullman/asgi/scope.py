"""The ASGI 3 ``http`` scope of a request."""

from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import unquote

from .. import _head
from .._interface import Request

# Spec 2.4: a send on a request that is gone raises (pullman.Closed, an OSError). Under 2.3
# Starlette's streaming responses also listen for a disconnect with a receive() of their own,
# which takes body chunks from under an app still reading the body.
ASGI = {"version": "3.0", "spec_version": "2.4"}


def build_scope(request: Request, state: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The scope; ``state`` (what lifespan startup left) is copied, one copy per request, as
    the spec asks."""
    headers = request.headers
    url_scheme = _head.scheme(headers)
    scope: Dict[str, Any] = {
        "type": "http",
        "asgi": dict(ASGI),
        "http_version": request.http_version,
        "method": request.method.upper(),
        "scheme": url_scheme,
        "path": unquote(request.path),
        "raw_path": request.path.encode("latin-1"),
        "query_string": request.query.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "client": _head.peer_address(request.peer),
        "server": _head.server_address(headers, url_scheme),
        "extensions": {
            "pullman": {
                "request_id": request.request_id,
                "deadline_ms": request.deadline_ms,
                "in_shared_memory": request.in_shared_memory,
            }
        },
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def is_body_empty(request: Request) -> bool:
    """Whether the request has no body, known from its head alone: HTTP/1 without
    ``content-length`` or ``transfer-encoding`` (RFC 9112 6.3), or ``content-length: 0``. Then
    no read is needed (nor a thread to wait in it)."""
    length = _head.header_value(request.headers, "content-length")
    if length is not None:
        return length.strip() == "0"
    if request.http_version in ("1.0", "1.1"):
        return _head.header_value(request.headers, "transfer-encoding") is None
    return False
