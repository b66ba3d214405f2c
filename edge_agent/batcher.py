"""Groups readings per device into batches, by count (``max_readings``) and by latency.

The latency of a pending batch is measured from the moment its oldest reading was *added* (on the
agent's monotonic clock), not from the reading's own timestamp: a source catching up after a stall
must not produce a burst of tiny batches. Not thread-safe: one thread owns a batcher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wire import Reading

__all__ = ["Batcher", "ReadyBatch"]


@dataclass(frozen=True, slots=True)
class ReadyBatch:
    """Readings of one device, ready to be numbered and published."""

    device_id: str
    readings: list[Reading]
    reason: str  # "count", "latency" or "flush"


@dataclass(slots=True)
class _Pending:
    readings: list[Reading] = field(default_factory=list)
    since: float = 0.0


class Batcher:
    """Per-device buffers cut into batches of at most ``max_readings``."""

    def __init__(self, max_readings: int, max_latency_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_readings < 1 or max_latency_s <= 0:
            raise ValueError("need max_readings >= 1 and max_latency_s > 0")
        self.max_readings = max_readings
        self.max_latency_s = max_latency_s
        self._clock = clock
        self._pending: dict[str, _Pending] = {}

    def add(self, device_id: str, readings: Iterable[Reading]) -> list[ReadyBatch]:
        """Buffer ``readings``; return the batches that became full."""
        pending = self._pending.setdefault(device_id, _Pending())
        ready: list[ReadyBatch] = []
        for reading in readings:
            if not pending.readings:
                pending.since = self._clock()
            pending.readings.append(reading)
            if len(pending.readings) >= self.max_readings:
                ready.append(ReadyBatch(device_id, pending.readings, "count"))
                pending.readings = []
        return ready

    def due(self) -> list[ReadyBatch]:
        """Cut and return the batches whose oldest reading has waited ``max_latency_s`` or more."""
        now = self._clock()
        ready: list[ReadyBatch] = []
        for device_id, pending in self._pending.items():
            if pending.readings and now - pending.since >= self.max_latency_s:
                ready.append(ReadyBatch(device_id, pending.readings, "latency"))
                pending.readings = []
        return ready

    def next_due_in(self) -> float | None:
        """Seconds until the next latency cut, or None when nothing is buffered."""
        waits = [p.since + self.max_latency_s for p in self._pending.values() if p.readings]
        return max(0.0, min(waits) - self._clock()) if waits else None

    def flush(self) -> list[ReadyBatch]:
        """Cut every non-empty buffer now (on shutdown)."""
        ready = [ReadyBatch(d, p.readings, "flush") for d, p in self._pending.items() if p.readings]
        for pending in self._pending.values():
            pending.readings = []
        return ready

    def discard(self, device_id: str) -> int:
        """Drop the buffered readings of ``device_id``; return how many were dropped."""
        pending = self._pending.pop(device_id, None)
        return len(pending.readings) if pending else 0

    def buffered(self, device_id: str) -> int:
        pending = self._pending.get(device_id)
        return len(pending.readings) if pending else 0
