"""The package's exceptions. The native module raises these same classes (it imports them
from here), so the pure-Python adapters and their tests need no build."""


class Error(Exception):
    """Base of pullman's own exceptions."""


class Closed(Error, ConnectionError):
    """The request is gone: the hub cancelled it (its client went away, its deadline passed)
    or the link to the hub broke. Stop working on it; its answer can no longer be sent."""


class WrongState(Error, RuntimeError):
    """A call out of order: answered twice, ``write`` before ``start``, ``pass_`` in a
    respond pool, a setting after ``connect``."""


class Refused(Error):
    """The hub refused the worker for good (wrong token, unknown pool, a pool of the other
    mode); the message has the hub's reason."""
