"""The WSGI runner: threads that take requests from the worker and run the app on them."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Dict, List, Optional

from .._drain import SignalDrain
from .._errors import Refused
from .._interface import Worker
from .environ import base_environ
from .response import App, handle

log = logging.getLogger("pullman.wsgi")

SIGNAL_POLL = 0.1
"""Seconds the main thread waits at most between looks at pending signals: how late a
drain may start after SIGTERM."""


class Runner:
    """Runs ``app`` on ``threads`` threads, each in a ``worker.next()`` loop, until the worker
    drains: on SIGTERM or SIGINT, or after ``max_requests`` requests (plus up to
    ``max_requests_jitter``, so that a set of processes does not recycle all at once)."""

    def __init__(
        self,
        app: App,
        worker: Worker,
        threads: int,
        max_requests: int = 0,
        max_requests_jitter: int = 0,
        proxies: Any = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.app = app
        self.worker = worker
        self.threads = threads
        self.proxies = proxies
        self.request_limit = (
            max_requests + random.randint(0, max(0, max_requests_jitter)) if max_requests > 0 else 0
        )
        self.served = 0
        self.refused: Optional[Refused] = None
        self._lock = threading.Lock()
        self._base: Dict[str, Any] = base_environ(multithread=threads > 1)

    def run(self) -> int:
        """Connects, serves until drained, closes the worker; the exit status: 0 after a
        drain, 1 if the worker stopped for good (the hub refused it, its redirect port was taken)."""
        with SignalDrain(self.worker.drain):
            self.worker.connect()
            pullers: List[threading.Thread] = [
                threading.Thread(target=self._serve, name=f"pullman-wsgi-{i}", daemon=True)
                for i in range(self.threads)
            ]
            for thread in pullers:
                thread.start()
            for thread in pullers:
                # A signal the kernel hands to another thread runs its Python handler only when
                # the main thread next runs bytecode: wait in slices.
                while thread.is_alive():
                    thread.join(SIGNAL_POLL)
        self.worker.close()
        if self.refused is not None:
            log.error("the worker stopped: %s", self.refused)
            return 1
        log.info("drained after %d requests", self.served)
        return 0

    def _serve(self) -> None:
        while True:
            try:
                request = self.worker.next()
            except Refused as refused:
                self.refused = refused
                self.worker.drain()
                return
            if request is None:
                return
            handle(self.app, request, self._base, self.proxies)
            self._count()

    def _count(self) -> None:
        with self._lock:
            self.served += 1
            if self.request_limit and self.served == self.request_limit:
                log.info("served %d requests (--max-requests): draining", self.served)
                self.worker.drain()
