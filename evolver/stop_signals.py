"""Ctrl-C and SIGTERM as a request to stop, not an exception thrown wherever the program happens to be.

A terminal's Ctrl-C (SIGINT) and a process manager's SIGTERM (`kill`, `docker stop`, `ray job
stop`) arrive at any bytecode: raised as `KeyboardInterrupt` they can land inside a SQL
transaction or a Ray call. While a `StopSignals` block is active in the main thread, the first
such signal only sets `received` (the signal's name); the coordinator's loop reads it each turn
and stops in order. A second signal is taken as "now": `KeyboardInterrupt`, as without the block.
Outside the main thread (the API's in-process launcher) Python allows no handlers: the block then
does nothing and `received` stays None.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """`with StopSignals() as stop:` … `if stop.received: …` (see the module's docstring)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"{name} while stopping")
        self.received = name
        log.warning("%s received: stopping the running trials (again to quit at once)", name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
