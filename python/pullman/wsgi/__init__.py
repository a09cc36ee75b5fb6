"""Serving a WSGI app as a pullman worker: ``python -m pullman.wsgi --threads N module:app``.

# Layout
- ``environ``: the PEP 3333 environ of a request; ``input``: ``wsgi.input``;
  ``file_wrapper``: ``wsgi.file_wrapper``.
- ``response``: one request through the app (``start_response``, the iterable, the answer).
- ``runner``: the threads, the drain, ``--max-requests``.
- ``__main__``: the command line.
"""

from .environ import base_environ, build_environ
from .file_wrapper import FileWrapper
from .input import Input
from .response import handle
from .runner import Runner

__all__ = ["FileWrapper", "Input", "Runner", "base_environ", "build_environ", "handle"]
