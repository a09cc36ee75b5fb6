"""The PEP 3333 environ of a request."""

from __future__ import annotations

import sys
from typing import Any, Dict

from .._interface import Request
from .file_wrapper import FileWrapper
from .input import Input


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


def build_environ(request: Request, base: Dict[str, Any], proxies: Any = None) -> Dict[str, Any]:
    """``base`` plus what this request says (:meth:`Request.wsgi_environ`: the CGI variables,
    ``HTTP_*`` headers, ``wsgi.url_scheme``, ``pullman.request_id``...), and ``wsgi.input``
    over its body. ``wsgi.url_scheme`` is ``https`` only on the word of one of ``proxies``
    (a native ``Proxies``), the runner's ``--forwarded-allow-ips``."""
    environ = request.wsgi_environ(base, proxies)
    environ["wsgi.input"] = Input(request)
    return environ
