"""Encoded batches waiting for a broker acknowledgement.

A batch enters the outbox before it is published and leaves it only when the broker acknowledges
it (PUBACK), so nothing is forgotten while the broker is unreachable. :class:`Outbox` is the
contract the publisher relies on; :class:`MemoryOutbox` is bounded and lives in memory. A durable
disk queue (same contract, replayed at start) can replace it without touching the publisher.

Order: ``take`` hands out the oldest unsent batches; after a lost connection ``requeue`` puts the
in-flight batches back in front, so each device's batches are (re)published in sequence order.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MemoryOutbox", "Outbox", "OutboxItem"]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One encoded batch and where it goes."""

    device_id: str
    seq: int
    topic: str
    payload: bytes
    readings: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.device_id, self.seq)


class Outbox(Protocol):
    """Where the publisher keeps batches until they are acknowledged. Implementations are thread-safe."""

    def put(self, item: OutboxItem) -> list[OutboxItem]:
        """Store ``item``; return the batches dropped to respect the capacity (possibly ``item``)."""
        ...

    def take(self, limit: int) -> list[OutboxItem]:
        """Mark up to ``limit`` of the oldest unsent batches as in flight and return them."""
        ...

    def ack(self, item: OutboxItem) -> bool:
        """Forget an in-flight batch for good; False if it was not in flight."""
        ...

    def requeue(self) -> int:
        """Connection lost: every in-flight batch becomes unsent again, ahead of the others."""
        ...

    def __len__(self) -> int:
        """Batches not yet acknowledged (unsent plus in flight)."""
        ...

    @property
    def unsent(self) -> int:
        """Batches waiting to be published."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class MemoryOutbox:
    """A bounded in-memory outbox; when full, the oldest *unsent* batch is dropped."""

    def __init__(self, max_batches: int) -> None:
        if max_batches < 1:
            raise ValueError("max_batches must be >= 1")
        self.max_batches = max_batches
        self._lock = threading.Lock()
        self._unsent: deque[OutboxItem] = deque()
        self._inflight: dict[tuple[str, int], OutboxItem] = {}

    def put(self, item: OutboxItem) -> list[OutboxItem]:
        with self._lock:
            dropped: list[OutboxItem] = []
            while len(self._unsent) + len(self._inflight) >= self.max_batches:
                if not self._unsent:
                    return [item]  # everything is in flight: refuse the newcomer
                dropped.append(self._unsent.popleft())
            self._unsent.append(item)
            return dropped

    def take(self, limit: int) -> list[OutboxItem]:
        with self._lock:
            taken: list[OutboxItem] = []
            while self._unsent and len(taken) < limit:
                item = self._unsent.popleft()
                self._inflight[item.key] = item
                taken.append(item)
            return taken

    def ack(self, item: OutboxItem) -> bool:
        with self._lock:
            return self._inflight.pop(item.key, None) is not None

    def requeue(self) -> int:
        with self._lock:
            items = list(self._inflight.values())
            self._inflight.clear()
            self._unsent.extendleft(reversed(items))
            return len(items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._unsent) + len(self._inflight)

    @property
    def unsent(self) -> int:
        with self._lock:
            return len(self._unsent)

    def close(self) -> None:
        with self._lock:
            self._unsent.clear()
            self._inflight.clear()
