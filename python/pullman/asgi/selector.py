"""The event loop's selector, with the worker's link in it.

Where asyncio's loop waits for its events, :class:`WorkerSelector` waits in
``Worker.next_batch``, which runs the worker's link on the loop's thread meanwhile and returns
when a request came, the loop's own fds have events, or the loop's timeout passed. So a short
request is read from the hub, run and answered by one thread, as a server whose loop reads its
own sockets does: no puller thread, no hand-over between threads, no second holder of the GIL.
"""

from __future__ import annotations

import selectors
from typing import Any, Callable, List, Optional, Tuple

from .._errors import Refused
from .._interface import Request, Worker

BATCH_MAX = 4
"""Most requests taken in one wait. The loop runs them, and their answers go out at its next
wait: a large batch holds every answer back until the last request of it has run, and the
hub, the clients and this loop then take turns instead of working at once. At 32
connections to `/hello`, batches of 4 served 43 to 47 k req/s where batches of 64 served 33 to
36 k (batches of 1: 33 to 36 k, the link's turn per request costing more than it saves)."""


class WorkerSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A plain selector until :meth:`attach`; then each ``select`` waits in the worker too."""

    def __init__(self) -> None:
        super().__init__()
        self._worker: Optional[Worker] = None
        self._watch: Any = None
        self._on_requests: Callable[[List[Request]], None] = lambda batch: None
        self._on_end: Callable[[Optional[Refused]], None] = lambda refused: None

    def attach(
        self,
        worker: Worker,
        on_requests: Callable[[List[Request]], None],
        on_end: Callable[[Optional[Refused]], None],
    ) -> None:
        """From now on, requests that come go to ``on_requests`` (on the loop's thread, within
        ``select``); once the worker has drained, or the hub refused it, ``on_end`` is called
        (with the refusal) and the selector is a plain one again."""
        self._watch = worker.watch(self.fileno())
        self._worker = worker
        self._on_requests = on_requests
        self._on_end = on_end

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        worker = self._worker
        if worker is not None:
            try:
                batch = worker.next_batch(BATCH_MAX, timeout, self._watch)
            except Refused as refused:
                self._detach()
                self._on_end(refused)
            else:
                if batch is None:
                    self._detach()
                    self._on_end(None)
                elif batch:
                    self._on_requests(batch)
            # The wait is over: collect the loop's own events without waiting again.
            timeout = 0
        return super().select(timeout)

    def _detach(self) -> None:
        self._worker = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def close(self) -> None:
        self._detach()
        super().close()
