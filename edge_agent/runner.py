"""Runs one source on a thread of its own: polls ``read()``, retries with backoff when it raises.

A source that fails is stopped, waited for (exponential backoff with jitter) and started again; its
errors are counted and logged (the first three of a streak and then every tenth, so a machine that
is off for a weekend does not flood the journal), its health is kept for ``edge-agent status``, and
the other sources carry on undisturbed. Reads follow a fixed schedule (``poll_interval_s`` from the
previous read's start), so a slow device does not make the period drift.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass

from edge_agent.backoff import Backoff
from edge_agent.errors import SourceError
from edge_agent.sources.base import Source
from wire import Reading

__all__ = ["SourceHealth", "SourceRunner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One source's state: ``ok`` (reading), ``starting``, ``failing`` (retrying) or ``stopped``."""

    device_id: str
    kind: str
    state: str
    readings: int
    last_reading_at: float | None  # epoch seconds when readings last arrived
    errors: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None
    retry_at: float | None  # epoch seconds of the next attempt while failing


class SourceRunner:
    """Polls one source and puts ``(device_id, readings)`` on the agent's queue."""

    def __init__(
        self,
        source: Source,
        out: queue.Queue[tuple[str, list[Reading]]],
        *,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.device_id = source.device_id
        self.kind = str(getattr(source, "kind", type(source).__name__))
        self._out = out
        self._backoff = Backoff(retry_min_s, retry_max_s, rng)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.device_id}", daemon=True)
        self.errors = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.retry_at: float | None = None
        self.readings = 0
        self.last_reading_at: float | None = None
        self.running = False
        self._state = "starting"

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("source %s did not stop within %.1f s", self.device_id, timeout_s, extra=self._extra())

    def _extra(self, **more: object) -> dict[str, object]:
        """Structured fields of this source's log lines (``--log-format json``)."""
        return {"device_id": self.device_id, "source": self.kind, **more}

    def health(self) -> SourceHealth:
        return SourceHealth(
            device_id=self.device_id,
            kind=self.kind,
            state=self._state,
            readings=self.readings,
            last_reading_at=self.last_reading_at,
            errors=self.errors,
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            retry_at=self.retry_at,
        )

    def _run(self) -> None:
        started = False
        interval = max(0.0, float(self.source.poll_interval_s))
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                if not started:
                    self._state = "starting"
                    self.source.start()
                    started = self.running = True
                    due = time.monotonic()
                readings = self.source.read()
            except Exception as exc:  # a source may fail in any way; it must not take the agent down
                self._failed(exc)
                started = self.running = False
                continue
            if self.consecutive_failures:
                log.info(
                    "source %s is reading again after %d failure(s)",
                    self.device_id,
                    self.consecutive_failures,
                    extra=self._extra(failures=self.consecutive_failures),
                )
            self._backoff.reset()
            self.consecutive_failures = 0
            self.retry_at = None
            self._state = "ok"
            if readings:
                self.readings += len(readings)
                self.last_reading_at = time.time()
                self._out.put((self.device_id, readings))
            due += interval
            now = time.monotonic()
            if due < now:  # the read took longer than a period: skip the missed slots
                due = now
            self._stop.wait(due - now)
        if started:
            self._safe_stop()
        self.running = False
        self._state = "stopped"

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.consecutive_failures += 1
        self.last_error = exc.reason if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        self.last_error_at = time.time()
        self._state = "failing"
        delay = self._backoff.next_delay()
        self.retry_at = time.time() + delay
        n = self.consecutive_failures
        level = logging.WARNING if n <= 3 or n % 10 == 0 else logging.DEBUG
        log.log(
            level,
            "source %s failed (%s); retrying in %.1f s (failure %d)",
            self.device_id,
            self.last_error,
            delay,
            n,
            extra=self._extra(error=self.last_error, failures=n, errors=self.errors, retry_in_s=round(delay, 3)),
        )
        self._safe_stop()
        self._stop.wait(delay)

    def _safe_stop(self) -> None:
        try:
            self.source.stop()
        except Exception as exc:
            log.warning("source %s: stop() failed: %s", self.device_id, exc, extra=self._extra(error=str(exc)))
