"""The pipeline's watchdog: is a worker thread dead, or stuck with messages waiting?

The flush, control and region threads call :meth:`Watchdog.progress` whenever they get something done or
try again (a commit, an acknowledgement, a retry of a store that is down); the flush thread names the
stage it is in (:meth:`Watchdog.stage`). Health asks :meth:`Watchdog.problem`:

- a thread **died** (an exception escaped its loop): the problem is permanent, and ``on_fatal`` is called
  once (``ingest serve`` exits non-zero so that its supervisor restarts it);
- the pipeline is **stalled**: messages wait (received, not acknowledged) and nothing progressed for
  ``stall_s`` seconds: a thread is blocked (a lock that never comes, a hung socket).

An outage is not a stall: the retry loops report progress on every attempt, and the store is reported
down on its own.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("ingest.watchdog")


class Watchdog:
    def __init__(self, stall_s: float, on_fatal: Callable[[str], None] | None = None) -> None:
        self.stall_s = stall_s
        self._on_fatal = on_fatal
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._stage = "idle"
        self.fatal: str | None = None

    def progress(self) -> None:
        self._last = time.monotonic()  # a float store: atomic enough for a heartbeat

    def stage(self, name: str) -> None:
        self._stage = name
        self._last = time.monotonic()

    def died(self, thread: str, exc: BaseException) -> None:
        """A worker thread's loop raised: record it, log the traceback, and call ``on_fatal`` (once)."""
        text = f"thread {thread} died: {type(exc).__name__}: {exc}"
        with self._lock:
            first = self.fatal is None
            if first:
                self.fatal = text
        log.critical("%s\n%s", text, "".join(traceback.format_exception(exc)))
        if first and self._on_fatal is not None:
            self._on_fatal(text)

    def problem(self, waiting: int) -> str | None:
        """Why the pipeline is not working, or None. ``waiting``: messages received and not acknowledged."""
        if self.fatal is not None:
            return self.fatal
        idle = time.monotonic() - self._last
        if waiting > 0 and idle > self.stall_s:
            return (
                f"pipeline stalled: no progress for {idle:.0f} s in stage {self._stage!r} with {waiting} "
                f"messages waiting"
            )
        return None
