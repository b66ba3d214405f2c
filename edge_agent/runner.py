"""Runs one source on a thread of its own: polls ``read()``, retries with backoff when it raises.

A source that fails is stopped, waited for (exponential backoff with jitter) and started again; its
errors are counted and logged, and the other sources carry on undisturbed.
"""

from __future__ import annotations

import logging
import queue
import random
import threading

from edge_agent.backoff import Backoff
from edge_agent.sources.base import Source
from wire import Reading

__all__ = ["SourceRunner"]

log = logging.getLogger(__name__)


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
        self._out = out
        self._backoff = Backoff(retry_min_s, retry_max_s, rng)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.device_id}", daemon=True)
        self.errors = 0
        self.last_error: str | None = None
        self.running = False

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("source %s did not stop within %.1f s", self.device_id, timeout_s)

    def _run(self) -> None:
        started = False
        while not self._stop.is_set():
            try:
                if not started:
                    self.source.start()
                    started = self.running = True
                readings = self.source.read()
            except Exception as exc:  # a source may fail in any way; it must not take the agent down
                self._failed(exc)
                started = self.running = False
                continue
            self._backoff.reset()
            if readings:
                self._out.put((self.device_id, readings))
            self._stop.wait(self.source.poll_interval_s)
        if started:
            self._safe_stop()
        self.running = False

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        delay = self._backoff.next_delay()
        log.warning("source %s failed (%s); restarting in %.1f s", self.device_id, self.last_error, delay)
        self._safe_stop()
        self._stop.wait(delay)

    def _safe_stop(self) -> None:
        try:
            self.source.stop()
        except Exception as exc:
            log.warning("source %s: stop() failed: %s", self.device_id, exc)
