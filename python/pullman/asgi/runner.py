"""The ASGI runner: an event loop on the main thread, which takes requests from the hub where
it waits for its events (``selector.py``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional, Set

from .._errors import Refused
from .._interface import Request, Worker
from .cycle import App, Cycle
from .lifespan import Lifespan, LifespanFailed
from .selector import WorkerSelector

log = logging.getLogger("pullman.asgi")

class Runner:
    """Serves ``app``: lifespan startup, then the requests the loop takes from the worker where
    it waits for its events, at most ``limit`` in flight (the worker's credits); SIGTERM or
    SIGINT drains; after the last request, lifespan shutdown.

    Body reads and writes wait on an executor of ``limit`` threads, started as needed: a
    request waits in at most one call at a time, so no request waits for another's."""

    def __init__(self, app: App, worker: Worker, limit: int, lifespan: bool = True, proxies: Any = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self.worker = worker
        self.limit = limit
        self.use_lifespan = lifespan
        self.proxies = proxies
        self.refused: Optional[Refused] = None
        self.served = 0
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._stopping = False

    def run(self) -> int:
        """Runs to the end; the exit status: 0 after a drain, 1 if startup failed or the hub
        refused the worker."""
        selector = WorkerSelector()
        loop = asyncio.SelectorEventLoop(selector)
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self.serve(selector))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def drain(self) -> None:
        self._stopping = True
        self.worker.drain()

    async def serve(self, selector: WorkerSelector) -> int:
        """Runs on a loop whose selector is ``selector``."""
        loop = asyncio.get_running_loop()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
        try:
            return await self._serve(loop, selector)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        log.info("%s: draining", signal.Signals(signum).name)
        self.drain()

    async def _serve(self, loop: asyncio.AbstractEventLoop, selector: WorkerSelector) -> int:
        lifespan = Lifespan(self.app) if self.use_lifespan else None
        if lifespan is not None:
            try:
                await lifespan.startup()
            except LifespanFailed as failed:
                log.error("lifespan startup failed: %s", failed)
                return 1
        state = lifespan.state if lifespan is not None and lifespan.is_supported else None
        if not self._stopping:
            with ThreadPoolExecutor(self.limit, thread_name_prefix="pullman-asgi-io") as executor:
                await self._pull(loop, executor, state, selector)
        status = 0
        self.worker.close()
        if lifespan is not None:
            try:
                await lifespan.shutdown()
            except LifespanFailed as failed:
                log.error("lifespan shutdown failed: %s", failed)
        if self.refused is not None:
            log.error("the worker stopped: %s", self.refused)
            status = 1
        else:
            log.info("drained after %d requests", self.served)
        return status

    async def _pull(
        self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor, state: Any, selector: WorkerSelector
    ) -> None:
        self.worker.connect()
        ended = asyncio.Event()

        def start(requests: List[Request]) -> None:
            for request in requests:
                cycle = Cycle(request, loop, executor, self.proxies)
                task = loop.create_task(cycle.run(self.app, state))
                self._tasks.add(task)
                task.add_done_callback(self._done)

        def end(refused: Optional[Refused]) -> None:
            if refused is not None:
                self.refused = refused
            ended.set()

        selector.attach(self.worker, start, end)
        await ended.wait()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        self.served += 1
