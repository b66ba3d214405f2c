"""Encoded batches waiting for a broker acknowledgement.

A batch enters the outbox before it is published and leaves it only when the broker acknowledges
it (PUBACK), so nothing is forgotten while the broker is unreachable. :class:`Outbox` is the
contract the publisher relies on. :class:`BatchQueue` adds what the agent needs: numbering a
batch and storing it in one step (:meth:`BatchQueue.enqueue`), the full-queue policy and counters.
Implementations: :class:`edge_agent.diskqueue.DiskQueue` (SQLite, durable, the default) and
:class:`MemoryQueue` (bounded, in memory, lost on restart).

Order: ``take`` hands out the oldest unsent batches; after a lost connection ``requeue`` puts the
in-flight batches back in front, so each device's batches are (re)published in sequence order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from edge_agent.sequence import SequenceStore

__all__ = [
    "BatchQueue",
    "EnqueueResult",
    "MemoryOutbox",
    "MemoryQueue",
    "Outbox",
    "OutboxItem",
    "QueueSnapshot",
    "WhenFull",
]

WhenFull = Literal["drop_oldest", "reject_new"]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One encoded batch and where it goes."""

    device_id: str
    seq: int
    topic: str
    payload: bytes
    readings: int
    encoding: str | None = None  # "gzip" when the payload is compressed
    # epoch seconds when the batch was stored (publish latency = PUBACK - queued_at); not part of equality
    queued_at: float | None = field(default=None, compare=False)

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
    """A bounded in-memory outbox.

    When full (``max_batches``, or ``max_bytes`` of payload), ``drop_oldest`` drops the oldest
    *unsent* batches to make room and ``reject_new`` refuses the newcomer; either way ``put``
    returns what was not kept.
    """

    def __init__(self, max_batches: int, *, max_bytes: int | None = None, when_full: WhenFull = "drop_oldest") -> None:
        if max_batches < 1 or (max_bytes is not None and max_bytes < 1):
            raise ValueError("max_batches and max_bytes must be >= 1")
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.when_full = when_full
        self._lock = threading.Lock()
        self._unsent: deque[OutboxItem] = deque()
        self._inflight: dict[tuple[str, int], OutboxItem] = {}
        self._bytes = 0

    def _full(self, extra: int) -> bool:
        if len(self._unsent) + len(self._inflight) + 1 > self.max_batches:
            return True
        return self.max_bytes is not None and self._bytes + extra > self.max_bytes

    def put(self, item: OutboxItem) -> list[OutboxItem]:
        with self._lock:
            size = len(item.payload)
            if self.max_bytes is not None and size > self.max_bytes:
                return [item]
            dropped: list[OutboxItem] = []
            while self._full(size):
                if self.when_full == "reject_new" or not self._unsent:
                    self._unsent.extendleft(reversed(dropped))  # nothing is dropped after all
                    self._bytes += sum(len(d.payload) for d in dropped)
                    return [item]  # refuse the newcomer (or everything is in flight)
                old = self._unsent.popleft()
                self._bytes -= len(old.payload)
                dropped.append(old)
            self._unsent.append(item)
            self._bytes += size
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
            found = self._inflight.pop(item.key, None)
            if found is None:
                return False
            self._bytes -= len(found.payload)
            return True

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

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def oldest(self) -> OutboxItem | None:
        with self._lock:
            if self._inflight:
                return next(iter(self._inflight.values()))
            return self._unsent[0] if self._unsent else None

    def close(self) -> None:
        with self._lock:
            self._unsent.clear()
            self._inflight.clear()
            self._bytes = 0


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What :meth:`BatchQueue.enqueue` did: the stored batch, or a refusal, and what it evicted."""

    item: OutboxItem | None  # None when the batch was refused (queue full, reject_new)
    seq: int
    evicted: list[OutboxItem] = field(default_factory=list)  # older batches dropped (drop_oldest)

    @property
    def refused(self) -> bool:
        return self.item is None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The queue's state for stats and ``edge-agent status``."""

    kind: str
    batches: int  # not yet acknowledged (unsent + in flight)
    readings: int
    bytes: int  # payload bytes
    oldest_reading_ts: float | None  # epoch seconds of the first reading of the oldest queued batch
    max_batches: int
    max_bytes: int
    when_full: str
    evicted_batches: int  # dropped to make room (drop_oldest), since the queue was created
    evicted_readings: int
    refused_batches: int  # refused because full (reject_new)
    refused_readings: int
    last_full_at: float | None  # epoch seconds of the last eviction or refusal


class BatchQueue(Outbox, Protocol):
    """An :class:`Outbox` that also numbers batches (per-device sequence) and applies a full policy."""

    def enqueue(
        self,
        device_id: str,
        topic: str,
        build: Callable[[int], bytes],
        *,
        readings: int,
        first_ts: float,
        encoding: str | None = None,
    ) -> EnqueueResult:
        """Take the device's next sequence number, build the payload with it and store it."""
        ...

    def last_seq(self, device_id: str) -> int | None:
        """The last sequence number handed out for ``device_id`` (ever)."""
        ...

    def snapshot(self) -> QueueSnapshot:
        """Depth, bounds and full-queue counters."""
        ...


class MemoryQueue:
    """:class:`BatchQueue` in memory; sequence numbers are still persisted (``state_dir``).

    Batches not acknowledged when the process ends are lost (the ingest sees the gap).
    """

    kind = "memory"

    def __init__(
        self, state_dir: Path | str, *, max_batches: int, max_bytes: int, when_full: WhenFull = "drop_oldest"
    ) -> None:
        self._box = MemoryOutbox(max_batches, max_bytes=max_bytes, when_full=when_full)
        self._seq = SequenceStore(state_dir)
        self._lock = threading.Lock()
        self._first_ts: dict[tuple[str, int], float] = {}
        self._readings = 0
        self._evicted = [0, 0]
        self._refused = [0, 0]
        self._last_full_at: float | None = None

    def enqueue(
        self,
        device_id: str,
        topic: str,
        build: Callable[[int], bytes],
        *,
        readings: int,
        first_ts: float,
        encoding: str | None = None,
    ) -> EnqueueResult:
        seq = self._seq.next(device_id)
        item = OutboxItem(device_id, seq, topic, build(seq), readings, encoding, time.time())
        dropped = self._box.put(item)
        with self._lock:
            refused = bool(dropped) and dropped[-1] is item
            evicted = [d for d in dropped if d is not item]
            for old in evicted:
                self._first_ts.pop(old.key, None)
                self._readings -= old.readings
                self._evicted[0] += 1
                self._evicted[1] += old.readings
            if refused:
                self._refused[0] += 1
                self._refused[1] += readings
            else:
                self._first_ts[item.key] = first_ts
                self._readings += readings
            if dropped:
                self._last_full_at = time.time()
        return EnqueueResult(None if refused else item, seq, evicted)

    def last_seq(self, device_id: str) -> int | None:
        return self._seq.last(device_id)

    def snapshot(self) -> QueueSnapshot:
        oldest = self._box.oldest()
        with self._lock:
            return QueueSnapshot(
                kind=self.kind,
                batches=len(self._box),
                readings=self._readings,
                bytes=self._box.bytes,
                oldest_reading_ts=self._first_ts.get(oldest.key) if oldest else None,
                max_batches=self._box.max_batches,
                max_bytes=self._box.max_bytes or 0,
                when_full=self._box.when_full,
                evicted_batches=self._evicted[0],
                evicted_readings=self._evicted[1],
                refused_batches=self._refused[0],
                refused_readings=self._refused[1],
                last_full_at=self._last_full_at,
            )

    # --- Outbox ---------------------------------------------------------------------------
    def put(self, item: OutboxItem) -> list[OutboxItem]:
        return self._box.put(item)

    def take(self, limit: int) -> list[OutboxItem]:
        return self._box.take(limit)

    def ack(self, item: OutboxItem) -> bool:
        if not self._box.ack(item):
            return False
        with self._lock:
            self._first_ts.pop(item.key, None)
            self._readings -= item.readings
        return True

    def requeue(self) -> int:
        return self._box.requeue()

    def __len__(self) -> int:
        return len(self._box)

    @property
    def unsent(self) -> int:
        return self._box.unsent

    def close(self) -> None:
        self._box.close()
        self._seq.close()
