"""Serving an ASGI 3 app as a pullman worker: ``python -m pullman.asgi --limit N module:app``.

# Layout
- ``scope``: the ``http`` scope of a request.
- ``cycle``: one request through the app (``receive``, ``send``, the answer).
- ``lifespan``: startup and shutdown.
- ``selector``: the loop's selector, which waits in the worker: the loop's thread runs the link.
- ``runner``: the event loop, the drain.
- ``__main__``: the command line.
"""

from .cycle import Cycle
from .lifespan import Lifespan, LifespanFailed
from .runner import Runner
from .scope import build_scope

__all__ = ["Cycle", "Lifespan", "LifespanFailed", "Runner", "build_scope"]
