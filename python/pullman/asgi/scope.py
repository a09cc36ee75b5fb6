"""The ASGI 3 ``http`` scope of a request."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .._interface import Request

ASGI = {"version": "3.0", "spec_version": "2.4"}
"""The ``asgi`` key of the lifespan scope; the native ``http`` scope says the same. Spec 2.4:
a send on a request that is gone raises (``pullman.Closed``, an ``OSError``); under 2.3
Starlette's streaming responses also listen for a disconnect with a ``receive()`` of their own,
which takes body chunks from under an app still reading the body."""


def build_scope(request: Request, state: Optional[Dict[str, Any]] = None, proxies: Any = None) -> Dict[str, Any]:
    """The scope (:meth:`Request.asgi_scope`); ``state`` (what lifespan startup left) is
    copied, one copy per request, as the spec asks; ``scheme`` is ``https`` only on the word
    of one of ``proxies`` (a native ``Proxies``)."""
    return request.asgi_scope(state, proxies)

