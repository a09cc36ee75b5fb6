"""What the native module gives the rest of the package: a worker and its requests.

``pullman._native.Worker`` and the requests it hands out must satisfy :class:`Worker` and
:class:`Request` (``WorkerFactory`` for the constructor). The runners are written against these
protocols only, and their tests run them on an in-memory fake (``tests/fake.py``) that
satisfies them too, so the adapters are exercised without a hub or a build. The protocols
are ``runtime_checkable``: ``isinstance(request, Request)`` checks that every member exists.

Threads: a worker may be used from any thread, ``next`` from many at once; a request from one
thread at a time. Every call that waits (``next``, ``read``, ``write``, and ``respond``/``finish``
while the client is slow) waits without the GIL.

Errors are the classes of ``pullman._errors`` (re-exported as ``pullman.Closed``, ...), which the
native module raises too: ``Closed`` once the request is gone (the hub cancelled it, its client
went away, the link broke), ``WrongState`` for a call out of order, ``ValueError`` for a bad
argument (a status outside 100..=999, a header name or value that is not a valid field, a
string that does not encode to latin-1), ``Refused`` when the hub refused the worker for good.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

Header = Tuple[str, str]
"""A header field: name and value, latin-1 text (the bytes as sent, one character each)."""

OutHeader = Union[Tuple[str, str], Tuple[bytes, bytes]]
"""A header field of an answer: latin-1 text as :data:`Header`, or bytes as ASGI has them
(a list of two works as the tuple does)."""

Mode = Literal["respond", "filter"]


@runtime_checkable
class Request(Protocol):
    """One request, taken from the hub by :meth:`Worker.next`; answered once.

    The answer is one of: :meth:`respond`; :meth:`start`, :meth:`write`..., :meth:`finish`;
    in a filter pool, :meth:`pass_` or :meth:`block`. :meth:`close` releases the request
    (answering it if nothing did); a request dropped unclosed is closed by the collector.
    """

    method: str
    """The method as sent, e.g. ``"GET"``."""
    target: str
    """The request target as sent: path and query, e.g. ``"/a%20b?x=1"``."""
    path: str
    """The target up to ``?`` (still percent-encoded)."""
    query: str
    """The target after ``?``; ``""`` if it has none."""
    http_version: str
    """The client's HTTP version: ``"1.0"``, ``"1.1"``, ``"2"`` or ``"3"``."""
    headers: list[Header]
    """Every header field in order, names as sent (any case), duplicates kept."""
    peer: str
    """The client's address as ``"ip:port"`` (``"[v6]:port"`` for IPv6); ``""`` if unknown."""
    tls: bool
    """Whether the client reached the hub over TLS (the hub's ``[hub.tls]`` listener)."""
    request_id: str
    """The ``x-request-id`` the hub gave the request."""
    deadline_ms: int
    """Milliseconds left before the hub gives up on the request, when taken; 0 = none."""
    in_shared_memory: bool
    """Whether the head was read in place in shared memory (a ``--shm`` link)."""
    body_size: Optional[int]
    """The body's length when the head tells it: its ``content-length``, or 0 for an HTTP/1
    request with neither ``content-length`` nor ``transfer-encoding``; ``None`` when only its
    end will tell (chunked, HTTP/2 without a length)."""

    def wsgi_environ(self, base: Dict[str, Any], proxies: Any = None) -> Dict[str, Any]:
        """The PEP 3333 environ: a copy of ``base`` (the keys the same for every request)
        plus this request's: ``REQUEST_METHOD``, ``PATH_INFO`` (percent-decoded, one
        character per byte), ``QUERY_STRING``, ``SERVER_NAME``/``PORT``/``PROTOCOL``,
        ``REMOTE_ADDR``/``PORT``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``, ``HTTP_*`` per header
        (repeated fields joined with ``", "``, names with ``_`` dropped), ``wsgi.url_scheme``
        (``https`` when the client came over TLS, or when ``x-forwarded-proto`` says so and
        the client is one of ``proxies``, a ``pullman._native.Proxies``), ``pullman.request_id`` and
        ``pullman.deadline_ms``. ``wsgi.input`` is the caller's to add."""
        ...

    def asgi_scope(self, state: Optional[Dict[str, Any]] = None, proxies: Any = None) -> Dict[str, Any]:
        """The ASGI 3 ``http`` scope (spec 2.4): header names lowercase, ``path``
        percent-decoded as UTF-8, ``raw_path`` and ``query_string`` as sent, ``client`` and
        ``server`` as (host, port), the request id, deadline and shared-memory flag under
        ``extensions["pullman"]``, and a copy of ``state`` if given; ``scheme`` as
        :meth:`wsgi_environ`'s ``wsgi.url_scheme``."""
        ...

    def read(self) -> bytes:
        """The next chunk of the body; ``b""`` once the body has ended (and on every call
        after). Waits for the client without the GIL. Raises ``Closed`` if the request is
        gone."""
        ...

    def respond(self, status: int, headers: Sequence[OutHeader] = (), body: bytes = b"") -> None:
        """Answers at once: status, headers and the whole body (any bytes-like object).
        ``content-length`` is set from the body (one in ``headers`` is replaced). Raises
        ``WrongState`` if the request was answered already (or is a filter's), ``Closed`` if it
        is gone."""
        ...

    def start(self, status: int, headers: Sequence[OutHeader] = ()) -> None:
        """Starts a streamed answer: sends the status and the headers. With a
        ``content-length`` in ``headers`` the body must be that long; without one it is sent
        chunked (or as HTTP/2 data frames). ``WrongState`` if already answered."""
        ...

    def write(self, data: bytes) -> None:
        """Sends a chunk of a started answer (any bytes-like; empty is a no-op). Waits without
        the GIL while the client is slower than the app. ``WrongState`` before :meth:`start`
        or after :meth:`finish`; ``Closed`` once the request is gone."""
        ...

    def finish(self) -> None:
        """Ends a started answer. ``WrongState`` before :meth:`start` or if finished."""
        ...

    def pass_(
        self,
        set_headers: Optional[Sequence[OutHeader]] = None,
        append_headers: Optional[Sequence[OutHeader]] = None,
        remove_headers: Optional[Sequence[str]] = None,
        target: Optional[str] = None,
    ) -> None:
        """Filter pools only: lets the request go on to the upstream, with these edits
        (applied in the order remove, set, append) and, if given, a new target.
        ``WrongState`` in a respond pool or if already answered."""
        ...

    def block(self, status: int, headers: Sequence[OutHeader] = (), body: bytes = b"") -> None:
        """Filter pools only: answers the client directly (the upstream never sees the
        request), as :meth:`respond` would. ``WrongState`` in a respond pool or if already
        answered."""
        ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Calls ``callback()`` once, with the GIL, on a thread of the library, when the
        request is gone before :meth:`close` (the hub cancelled it, the link broke); at once
        (on such a thread) if it is gone already; never after :meth:`close`. It must be quick:
        the ASGI runner uses it to wake a ``receive()`` waiting for ``http.disconnect``."""
        ...

    def close(self) -> None:
        """Releases the request. One never answered is answered ``500``; one whose streamed
        answer was started and not finished is aborted (the client sees a truncated body, not a
        complete one). Idempotent; never raises ``Closed``."""
        ...

    def __enter__(self) -> Request: ...

    def __exit__(self, *exc_info: object) -> None:
        """Calls :meth:`close`."""
        ...


class Watch(Protocol):
    """An fd :meth:`Worker.next_batch` waits on."""

    def close(self) -> None:
        """Stops watching. Idempotent."""
        ...


@runtime_checkable
class Worker(Protocol):
    """A worker of one pool; after :meth:`connect` it keeps itself connected (redialing with
    backoff while the hub is away) until it is drained or closed."""

    def redirect(
        self, port: int, host: Optional[str] = None, min_bytes: int = 65536, expiry: float = 20.0
    ) -> None:
        """Redirect mode (respond pools, before :meth:`connect`): a ``200`` whose body is at
        least ``min_bytes`` long is answered ``303 See Other`` to ``http://HOST:PORT/KEY`` on
        the worker's own HTTP server on ``port`` (0: any free port), which serves it once to
        the client that follows; the body does not pass through the hub. ``host`` defaults to
        the worker's address on its TCP link to the hub (required with a ``unix://`` hub); a
        response nobody fetches is dropped after ``expiry`` seconds (at most 3600)."""
        ...

    def tls(self, ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None) -> None:
        """TLS to a ``tls://`` hub (before :meth:`connect`): ``ca``, a PEM file of the
        authorities that sign the hub's certificate (default: the system's roots); ``cert``
        and ``key`` together, this worker's client certificate, for a pool that names its
        workers (``allowed_workers``). A hub that refuses the certificate ends the worker
        (:class:`Refused`)."""
        ...

    def check(self) -> None:
        """Checks the settings as :meth:`connect` will, without connecting: ``ValueError``
        if one is missing or they contradict each other."""
        ...

    def connect(self) -> None:
        """Starts dialing the hub in the background; returns at once. ``ValueError`` for
        contradictory settings (``shm`` on a ``tcp://`` hub); ``WrongState`` if called
        twice."""
        ...

    def next(self, timeout: Optional[float] = None) -> Optional[Request]:
        """The next request, waiting (without the GIL) up to ``timeout`` seconds (``None``:
        as long as it takes). ``None`` once the worker is drained: the caller's loop ends.
        Raises ``TimeoutError`` when the timeout passes, ``Refused`` if the hub refused the
        worker, ``WrongState`` before :meth:`connect`. A wait on the main thread checks for
        signals, so a signal handler runs (and may raise) while it waits."""
        ...

    def next_batch(self, max: int, timeout: Optional[float] = None, watch: Optional[Watch] = None) -> Optional[List[Request]]:
        """For the thread of an event loop, where the loop would wait for its events: waits
        (without the GIL, running the link on this thread) until a request came, ``watch``'s
        fd is readable, or ``timeout`` seconds passed; returns the requests waiting, at most
        ``max``, possibly none, and sends on the answers this thread gave since its last
        call. ``None`` once the worker is drained; raises as :meth:`next`."""
        ...

    def watch(self, fd: int) -> Watch:
        """Registers ``fd`` (an event loop's poller) for :meth:`next_batch`; the worker keeps
        a duplicate of it until the watch is closed."""
        ...

    def drain(self) -> None:
        """Asks the hub to send nothing new; requests already taken finish, then every
        :meth:`next` returns ``None``. Returns at once (safe in a signal handler);
        idempotent."""
        ...

    def close(self) -> None:
        """Drains, waits for the requests taken to be closed (at most the drain grace, 30 s),
        and lets the link go. Idempotent."""
        ...

    def requests(self) -> Iterator[Request]:
        """``next()`` in a loop: yields requests until the worker is drained."""
        ...

    def __enter__(self) -> Worker: ...

    def __exit__(self, *exc_info: object) -> None:
        """Calls :meth:`close`."""
        ...


class WorkerFactory(Protocol):
    """The constructor, ``pullman.Worker(...)``; nothing is dialed before ``connect``."""

    def __call__(
        self,
        hub: str,
        pool: str,
        token: str,
        concurrency: int = 1,
        shm: bool = False,
        name: Optional[str] = None,
        mode: Mode = "respond",
        ready: Optional[Callable[[], bool]] = None,
        cpu_gate: Optional[float] = None,
        memory_gate: Optional[int] = None,
    ) -> Worker:
        """``hub``: ``tcp://HOST:PORT`` or ``unix:///path``. ``pool`` and ``token`` as in the
        hub's config. ``concurrency``: the credits, requests held at once (>= 1). ``shm``:
        read requests in place in shared memory (``unix://`` only). ``name``: how the hub's
        admin API and logs show the worker. ``mode``: the pool's kind.

        Gates: the worker takes a request only while each is open. ``ready()`` is called with
        the GIL, on a thread of the library, whenever a credit could be granted and every
        200 ms while it returns false: it must be quick; an exception counts as false (and is
        logged). ``cpu_gate``: open while at most that share (0 < x <= 1) of the CPU this
        process may use is busy. ``memory_gate``: open while at least that many bytes of
        memory are available. ``ValueError`` for a bad value."""
        ...
