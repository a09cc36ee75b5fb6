"""The ASGI ``lifespan`` protocol, as uvicorn's ``auto`` mode runs it: an app that raises
before answering startup does not support it, and is served without it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional

from .scope import ASGI

log = logging.getLogger("pullman.asgi")


class LifespanFailed(Exception):
    """The app sent ``lifespan.startup.failed`` (or ``.shutdown.failed``): its message."""


class Lifespan:
    """Startup before the worker connects, shutdown after it drained. ``state`` is the dict
    the app may fill at startup; each request's scope gets a copy."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: Dict[str, Any] = {}
        self.is_supported = True
        self._inbox: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self._answers: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self._task: Optional["asyncio.Task[None]"] = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._answers.put)
        except Exception as error:
            self._answers.put_nowait({"type": "pullman.lifespan.raised", "error": error})
        else:
            self._answers.put_nowait({"type": "pullman.lifespan.returned"})

    async def _step(self, phase: str) -> None:
        self._inbox.put_nowait({"type": f"lifespan.{phase}"})
        answer = await self._answers.get()
        kind = answer["type"]
        if kind == f"lifespan.{phase}.complete":
            return
        if kind == f"lifespan.{phase}.failed":
            raise LifespanFailed(answer.get("message", "") or f"lifespan {phase} failed")
        if phase == "startup":
            self.is_supported = False
            if kind == "pullman.lifespan.raised":
                log.info("the app does not support lifespan (it raised %r); going on without", answer["error"])
            return
        raise LifespanFailed(f"lifespan {phase}: unexpected {kind!r}" + (f": {answer['error']!r}" if "error" in answer else ""))

    async def startup(self) -> None:
        """Runs the app's startup; ``LifespanFailed`` if it failed."""
        self._task = asyncio.ensure_future(self._run())
        await self._step("startup")

    async def shutdown(self) -> None:
        """Runs the app's shutdown (if it supports lifespan); ``LifespanFailed`` if it failed."""
        if not self.is_supported or self._task is None:
            return
        try:
            await self._step("shutdown")
        finally:
            await asyncio.wait([self._task], timeout=SHUTDOWN_WAIT)


SHUTDOWN_WAIT = 5.0
"""Seconds to let the lifespan task return after it answered shutdown."""
