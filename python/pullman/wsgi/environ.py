"""The PEP 3333 environ of a request."""

from __future__ import annotations

import sys
from typing import Any, Dict
from urllib.parse import unquote_to_bytes

from .. import _head
from .._interface import Request
from .file_wrapper import FileWrapper
from .input import Input

# Headers that PEP 3333 puts in the environ without the HTTP_ prefix.
UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}


def base_environ(*, multithread: bool, multiprocess: bool = False) -> Dict[str, Any]:
    """The keys that are the same for every request of a runner."""
    return {
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


def build_environ(request: Request, base: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` plus what this request says. ``PATH_INFO`` is the path percent-decoded, one
    character per byte (latin-1), as PEP 3333 has it; header fields repeated are joined with
    ``", "``."""
    environ = dict(base)
    headers = request.headers
    url_scheme = _head.scheme(headers)
    server_name, server_port = _head.server_address(headers, url_scheme)
    environ.update(
        {
            "REQUEST_METHOD": request.method,
            "PATH_INFO": unquote_to_bytes(request.path).decode("latin-1"),
            "QUERY_STRING": request.query,
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version,
            "wsgi.url_scheme": url_scheme,
            "wsgi.input": Input(request),
            "pullman.request_id": request.request_id,
            "pullman.deadline_ms": request.deadline_ms,
        }
    )
    peer = _head.peer_address(request.peer)
    if peer is not None:
        environ["REMOTE_ADDR"] = peer[0]
        environ["REMOTE_PORT"] = str(peer[1])
    for name, value in headers:
        if "_" in name:
            # X-Forwarded_For would become HTTP_X_FORWARDED_FOR: a way around a proxy that
            # sets (and strips) the hyphenated one. Dropped, as gunicorn and nginx do.
            continue
        key = name.upper().replace("-", "_")
        if key not in UNPREFIXED:
            key = "HTTP_" + key
        if key in environ:
            environ[key] += ", " + value
        else:
            environ[key] = value
    environ.setdefault("HTTP_X_REQUEST_ID", request.request_id)
    return environ
