"""pullman: WSGI and ASGI apps, and custom workers, as workers of a pullman hub.

The runners are ``python -m pullman.wsgi`` and ``python -m pullman.asgi``; a program that is
not a web app uses :class:`Worker` directly. The native module (``pullman._native``) holds the
link to the hub; this package holds the adapters between its requests and WSGI / ASGI.
"""

from ._errors import Closed, Refused, WrongState

__all__ = ["Closed", "Refused", "Request", "Worker", "WrongState", "__version__"]

try:
    from ._native import Request, Worker, __version__
except ImportError:  # the package's sources used without a build, as the adapter tests do
    __version__ = "0+unbuilt"
