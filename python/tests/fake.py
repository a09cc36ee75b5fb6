"""An in-memory worker and requests that satisfy pullman._interface, for the adapters' tests.

A request's answer and body are the fake's own; its head's derived views (the WSGI environ,
the ASGI scope, the body's size) are the native module's, from a detached native request."""

from __future__ import annotations

import os
import queue
import select
import threading
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from pullman import Closed, Refused, WrongState

Header = Tuple[str, str]


class FakeRequest:
    """A request whose body comes from ``chunks`` and whose answer is recorded: ``state`` is
    new, started, finished, responded, aborted, passed, blocked or failed (closed unanswered,
    so answered 500)."""

    def __init__(
        self,
        method: str = "GET",
        target: str = "/",
        headers: Sequence[Header] = (),
        chunks: Sequence[bytes] = (),
        peer: str = "127.0.0.1:50000",
        request_id: str = "rid-1",
        http_version: str = "1.1",
        deadline_ms: int = 0,
        tls: bool = False,
    ) -> None:
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.http_version = http_version
        self.headers: List[Header] = list(headers)
        self.peer = peer
        self.tls = tls
        self.request_id = request_id
        self.deadline_ms = deadline_ms
        self.in_shared_memory = False
        self._chunks = list(chunks)
        self.reads = 0
        self.state = "new"
        self.status: Optional[int] = None
        self.response_headers: List[Header] = []
        self.body = bytearray()
        self.writes: List[bytes] = []
        self.edits: Optional[dict] = None
        self.cancelled = False
        self.closed = threading.Event()
        self._on_close: List[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- the test's side
    def cancel(self) -> None:
        """As the hub does when the client goes away: reads and writes now raise Closed, and
        the on_close callbacks run on another thread."""
        with self._lock:
            self.cancelled = True
            callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            threading.Thread(target=callback).start()

    def header(self, name: str) -> Optional[str]:
        for key, value in self.response_headers:
            if key.lower() == name:
                return value
        return None

    # -- the interface
    def _head(self):
        """A native request with this head: the environ and the scope come from the real code."""
        from pullman._native import Request

        return Request.detached(
            self.method,
            self.target,
            self.headers,
            self.peer,
            self.http_version,
            self.deadline_ms,
            self.request_id,
            self.tls,
        )

    @property
    def body_size(self) -> Optional[int]:
        return self._head().body_size

    def wsgi_environ(self, base: dict, proxies: object = None) -> dict:
        return self._head().wsgi_environ(base, proxies)

    def asgi_scope(self, state: Optional[dict] = None, proxies: object = None) -> dict:
        return self._head().asgi_scope(state, proxies)

    def _check_open(self) -> None:
        if self.cancelled:
            raise Closed("cancelled")
        if self.closed.is_set():
            raise WrongState("closed")

    def read(self) -> bytes:
        self._check_open()
        self.reads += 1
        return self._chunks.pop(0) if self._chunks else b""

    def respond(self, status: int, headers: Sequence[Header] = (), body: bytes = b"") -> None:
        self._check_open()
        self._answer(status, headers)
        self.body += body
        self.response_headers = [h for h in self.response_headers if h[0].lower() != "content-length"]
        self.response_headers.append(("content-length", str(len(body))))
        self.state = "responded"

    def start(self, status: int, headers: Sequence[Header] = ()) -> None:
        self._check_open()
        self._answer(status, headers)
        self.state = "started"

    def _answer(self, status: int, headers: Sequence[Header]) -> None:
        if self.state != "new":
            raise WrongState(f"already {self.state}")
        if not 100 <= status <= 999:
            raise ValueError(f"bad status {status}")
        fields: List[Header] = []
        for field in headers:
            # As the native one: (name, value) pairs, tuples or lists, of str or bytes.
            if not isinstance(field, (tuple, list)) or len(field) != 2:
                raise ValueError(f"bad header {field!r}")
            name, value = (bytes(x).decode("latin-1") if isinstance(x, (bytes, bytearray)) else x for x in field)
            if not isinstance(name, str) or not isinstance(value, str) or not name:
                raise ValueError(f"bad header {field!r}")
            fields.append((name, value))
        self.status = status
        self.response_headers = fields

    def write(self, data: bytes) -> None:
        self._check_open()
        if self.state != "started":
            raise WrongState(f"write when {self.state}")
        self.writes.append(bytes(data))
        self.body += data

    def finish(self) -> None:
        self._check_open()
        if self.state != "started":
            raise WrongState(f"finish when {self.state}")
        self.state = "finished"

    def pass_(self, set_headers=None, append_headers=None, remove_headers=None, target=None) -> None:
        self._check_open()
        if self.state != "new":
            raise WrongState(f"already {self.state}")
        self.edits = {"set": set_headers, "append": append_headers, "remove": remove_headers, "target": target}
        self.state = "passed"

    def block(self, status: int, headers: Sequence[Header] = (), body: bytes = b"") -> None:
        self.respond(status, headers, body)
        self.state = "blocked"

    def on_close(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.cancelled:
                self._on_close.append(callback)
                return
        threading.Thread(target=callback).start()

    def close(self) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            if self.state == "new":
                self.status = 500
                self.state = "failed"
            elif self.state == "started":
                self.state = "aborted"
            self._on_close = []
            self.closed.set()

    def __enter__(self) -> "FakeRequest":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_DRAINED = object()


class FakeWatch:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        pass


class FakeWorker:
    """Hands out the requests ``submit`` queued; after ``drain``, ``None`` forever (requests
    not taken yet stay with the hub, which would give them to another worker)."""

    def __init__(self, refuse: Optional[str] = None) -> None:
        self._queue: "queue.Queue[object]" = queue.Queue()
        self.connected = False
        self.is_drained = False
        self.is_closed = False
        self._refuse = refuse
        self._lock = threading.Lock()
        # Written when a request or the drain is queued: what next_batch waits on.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def submit(self, request: FakeRequest) -> FakeRequest:
        self._queue.put(request)
        os.write(self._wake_w, b"r")
        return request

    def redirect(self, port: int, host: Optional[str] = None, min_bytes: int = 65536, expiry: float = 20.0) -> None:
        raise NotImplementedError("the fake has no link: redirect mode is tested against the real hub")

    def tls(self, ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None) -> None:
        raise NotImplementedError("the fake has no link: TLS is tested against the real hub")

    def check(self) -> None:
        pass

    def connect(self) -> None:
        if self.connected:
            raise WrongState("connected twice")
        self.connected = True

    def next(self, timeout: Optional[float] = None) -> Optional[FakeRequest]:
        if not self.connected:
            raise WrongState("next before connect")
        if self._refuse is not None:
            raise Refused(self._refuse)
        if self.is_drained:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no request") from None
        if item is _DRAINED:
            self._queue.put(item)
            return None
        return item  # type: ignore[return-value]


    def next_batch(
        self, max: int, timeout: Optional[float] = None, watch: Optional["FakeWatch"] = None
    ) -> Optional[List[FakeRequest]]:
        """As the native one: waits until a request is queued, ``watch``'s fd is readable, or
        the timeout passed; then the requests queued, at most ``max`` (``None`` once
        drained)."""
        if not self.connected:
            raise WrongState("next_batch before connect")
        if self._refuse is not None:
            raise Refused(self._refuse)
        fds = [self._wake_r] + ([watch.fd] if watch is not None else [])
        select.select(fds, [], [], timeout)
        batch: List[FakeRequest] = []
        while len(batch) < max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _DRAINED:
                self._queue.put(item)
                if not batch:
                    return None
                break
            batch.append(item)  # type: ignore[arg-type]
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        return batch

    def watch(self, fd: int) -> "FakeWatch":
        return FakeWatch(fd)

    def __del__(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)

    def drain(self) -> None:
        with self._lock:
            if not self.is_drained:
                self.is_drained = True
                self._queue.put(_DRAINED)
                os.write(self._wake_w, b"d")

    def close(self) -> None:
        self.drain()
        self.is_closed = True

    def requests(self) -> Iterator[FakeRequest]:
        while True:
            request = self.next()
            if request is None:
                return
            yield request

    def __enter__(self) -> "FakeWorker":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
