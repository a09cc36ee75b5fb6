"""Drain on SIGTERM and SIGINT: the one way a runner stops."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Dict

log = logging.getLogger("pullman")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalDrain:
    """While entered (on the main thread), SIGTERM and SIGINT call ``drain``; a second SIGINT
    then ends the process the default way, for the impatient. The previous handlers come back
    on exit. Off the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self, drain: Callable[[], None]) -> None:
        self._drain = drain
        self._previous: Dict[int, Any] = {}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("%s: draining", signal.Signals(signum).name)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        self._drain()

    def __enter__(self) -> "SignalDrain":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
