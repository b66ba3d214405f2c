"""The durable store-and-forward queue: SQLite (WAL) between the batcher and the publisher.

One file, ``state_dir/state.sqlite3``, holds the per-device sequence numbers and the queued
batches. :meth:`DiskQueue.enqueue` takes the device's next number, builds the payload with it and
inserts the batch **in one transaction**, so the numbers and the queue cannot diverge: a number is
either used by a stored batch, or was used by a batch the full-queue policy dropped (the ingest
sees that gap), never silently lost.

Guarantees (see ``edge_agent/README.md``):

- **At least once.** A batch is deleted only after the broker acknowledged it (PUBACK). Commits
  use ``synchronous=FULL``: a batch that ``enqueue`` returned survives ``kill -9`` and power loss.
  After a crash the batches that were in flight are published again (duplicates; the ingest
  de-duplicates by ``(device_id, seq, index)``).
- **FIFO.** Batches are published in insertion order (``id``), and after a lost connection the
  in-flight ones are re-sent first, so each device's batches reach the broker in sequence order.
- **Bounded.** ``max_batches`` and ``max_bytes`` (payload bytes). When full, ``drop_oldest``
  deletes the oldest *unsent* batches to make room (Greengrass ``OverwriteOldestData``) and
  ``reject_new`` refuses the newcomer (``RejectNewData``); either is counted, persisted and shown by
  ``edge-agent status``.

Thread-safety: one connection behind a lock; the agent's loop enqueues, the publisher's network
thread takes and acknowledges. Acknowledged batches are deleted in groups (every 500 ms or 2,048
acknowledgements, and with any ``enqueue``), with a commit that does not wait for the disk: a
deletion lost to a power cut only means a duplicate after the restart, never a loss, and a replay
is not slowed down by one ``fsync`` per PUBACK.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import StateError
from edge_agent.outbox import EnqueueResult, OutboxItem, QueueSnapshot, WhenFull
from edge_agent.sequence import DB_NAME, adopt_legacy_db
from edge_agent.statelock import StateLock, ensure_state_dir

__all__ = ["DiskQueue", "read_snapshot"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS device_seq (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
    # AUTOINCREMENT: ids never go back, even when the queue empties (the FIFO cursor relies on it)
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        encoding TEXT,
        readings INTEGER NOT NULL,
        first_ts REAL NOT NULL,
        queued_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queue_counters (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        evicted_batches INTEGER NOT NULL DEFAULT 0,
        evicted_readings INTEGER NOT NULL DEFAULT 0,
        refused_batches INTEGER NOT NULL DEFAULT 0,
        refused_readings INTEGER NOT NULL DEFAULT 0,
        last_full_at REAL
    )""",
    "INSERT OR IGNORE INTO queue_counters (id) VALUES (1)",
)
NEXT_SEQ = (
    "INSERT INTO device_seq (device_id, last_seq) VALUES (?, 1) "
    "ON CONFLICT (device_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq"
)
RAISE_SEQ = (
    "INSERT INTO device_seq (device_id, last_seq) VALUES (?, ?) "
    "ON CONFLICT (device_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)"
)
FLUSH_EVERY_S = 0.5
FLUSH_EVERY_ACKS = 2048
COLUMNS = "id, device_id, seq, topic, payload, readings, encoding, queued_at"


@dataclass(slots=True)
class _InFlight:
    id: int
    size: int
    readings: int


class DiskQueue:
    """A bounded, durable FIFO of encoded batches; implements :class:`edge_agent.outbox.BatchQueue`."""

    kind = "disk"

    def __init__(
        self,
        state_dir: Path | str,
        *,
        max_batches: int = 1_000_000,
        max_bytes: int = 256 * 1024 * 1024,
        when_full: WhenFull = "drop_oldest",
        durable: bool = True,
    ) -> None:
        if max_batches < 1 or max_bytes < 1:
            raise ValueError("max_batches and max_bytes must be >= 1")
        self.state_dir = ensure_state_dir(Path(state_dir))
        self.path = self.state_dir / DB_NAME
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.when_full: WhenFull = when_full
        self._lock = StateLock(self.state_dir)
        self._mutex = threading.Lock()
        try:
            adopt_legacy_db(self.state_dir)
            fresh = not self.path.exists()
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if fresh:
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # give disk space back after a backlog
            self._db.execute("PRAGMA journal_mode=WAL")
            self._sync = "FULL" if durable else "NORMAL"
            self._db.execute(f"PRAGMA synchronous={self._sync}")
            for statement in SCHEMA:
                self._db.execute(statement)
            count, size, readings = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(sum(readings), 0) FROM batches"
            ).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._lock.release()
            raise StateError(self.path, f"cannot open the queue: {exc}") from None
        self._count, self._bytes, self._readings = int(count), int(size), int(readings)
        self._cursor = 0  # id of the last batch handed to the publisher
        self._inflight: dict[tuple[str, int], _InFlight] = {}
        self._acked: list[_InFlight] = []
        self._flushed_at = time.monotonic()
        self._closed = False

    # --- producer side (the agent's loop) -------------------------------------------------
    def enqueue(
        self,
        device_id: str,
        topic: str,
        build: Callable[[int], bytes],
        *,
        readings: int,
        first_ts: float,
        encoding: str | None = None,
        seq: int | None = None,
    ) -> EnqueueResult:
        """Number, build and store one batch atomically; apply the full policy if needed.

        ``seq`` stores a batch numbered elsewhere (the device's last number is raised to it).
        """
        with self._mutex:
            db = self._db
            count, size_total, readings_total = self._count, self._bytes, self._readings
            try:
                db.execute("BEGIN IMMEDIATE")
                count, size_total, readings_total = self._delete_acked(count, size_total, readings_total)
                if seq is None:
                    seq = int(db.execute(NEXT_SEQ, (device_id,)).fetchone()[0])
                else:
                    db.execute(RAISE_SEQ, (device_id, seq))
                payload = build(seq)
                size = len(payload)
                queued_at = time.time()
                evicted: list[OutboxItem] = []
                refused = size > self.max_bytes
                while not refused and (count + 1 > self.max_batches or size_total + size > self.max_bytes):
                    if self.when_full == "reject_new":
                        refused = True
                        break
                    row = db.execute(
                        f"SELECT {COLUMNS} FROM batches WHERE id > ? ORDER BY id LIMIT 1", (self._cursor,)
                    ).fetchone()
                    if row is None:  # everything queued is in flight: nothing may be dropped
                        refused = True
                        break
                    db.execute("DELETE FROM batches WHERE id = ?", (row[0],))
                    old = _item(row)
                    evicted.append(old)
                    count, size_total, readings_total = (
                        count - 1,
                        size_total - len(old.payload),
                        readings_total - old.readings,
                    )
                if refused:
                    db.execute(
                        "UPDATE queue_counters SET refused_batches = refused_batches + 1, "
                        "refused_readings = refused_readings + ?, last_full_at = ?",
                        (readings, time.time()),
                    )
                else:
                    db.execute(
                        "INSERT INTO batches (device_id, seq, topic, payload, encoding, readings, first_ts, queued_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (device_id, seq, topic, payload, encoding, readings, first_ts, queued_at),
                    )
                    count, size_total, readings_total = count + 1, size_total + size, readings_total + readings
                if evicted:
                    db.execute(
                        "UPDATE queue_counters SET evicted_batches = evicted_batches + ?, "
                        "evicted_readings = evicted_readings + ?, last_full_at = ?",
                        (len(evicted), sum(e.readings for e in evicted), time.time()),
                    )
                db.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StateError(self.path, f"cannot store a batch: {exc}") from None
                raise
            self._count, self._bytes, self._readings = count, size_total, readings_total
            self._acked.clear()
        item = None if refused else OutboxItem(device_id, seq, topic, payload, readings, encoding, queued_at)
        return EnqueueResult(item, seq, evicted)

    def put(self, item: OutboxItem) -> list[OutboxItem]:
        """Store an already numbered batch (the :class:`Outbox` contract); returns what was not kept."""
        result = self.enqueue(
            item.device_id,
            item.topic,
            lambda _seq: item.payload,
            readings=item.readings,
            first_ts=time.time(),
            encoding=item.encoding,
            seq=item.seq,
        )
        return [item] if result.refused else result.evicted

    # --- consumer side (the publisher's network thread) -----------------------------------
    def take(self, limit: int) -> list[OutboxItem]:
        if limit <= 0:
            return []
        with self._mutex:
            self._flush_acked(force=False)
            if self._count - len(self._acked) - len(self._inflight) <= 0:
                return []  # nothing unsent: no query (the publisher asks every tick)
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM batches WHERE id > ? ORDER BY id LIMIT ?", (self._cursor, limit)
            ).fetchall()
            items = []
            for row in rows:
                item = _item(row)
                self._inflight[item.key] = _InFlight(row[0], len(item.payload), item.readings)
                items.append(item)
            if rows:
                self._cursor = rows[-1][0]
            return items

    def ack(self, item: OutboxItem) -> bool:
        with self._mutex:
            found = self._inflight.pop(item.key, None)
            if found is None:
                return False
            self._acked.append(found)
            return True

    def requeue(self) -> int:
        with self._mutex:
            self._flush_acked()
            n = len(self._inflight)
            if n:
                self._cursor = min(f.id for f in self._inflight.values()) - 1
                self._inflight.clear()
            return n

    def flush(self) -> None:
        """Delete the acknowledged batches now (also done by the next take/enqueue)."""
        with self._mutex:
            self._flush_acked()

    def __len__(self) -> int:
        with self._mutex:
            return self._count - len(self._acked)

    @property
    def unsent(self) -> int:
        with self._mutex:
            return self._count - len(self._acked) - len(self._inflight)

    # --- observation -----------------------------------------------------------------------
    def last_seq(self, device_id: str) -> int | None:
        with self._mutex:
            row = self._db.execute("SELECT last_seq FROM device_seq WHERE device_id = ?", (device_id,)).fetchone()
        return int(row[0]) if row else None

    def snapshot(self) -> QueueSnapshot:
        with self._mutex:
            pending = self._acked
            return _snapshot(
                self._db,
                kind=self.kind,
                batches=self._count - len(pending),
                readings=self._readings - sum(a.readings for a in pending),
                size=self._bytes - sum(a.size for a in pending),
                exclude=[a.id for a in pending],
                max_batches=self.max_batches,
                max_bytes=self.max_bytes,
                when_full=self.when_full,
            )

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                self._flush_acked()
                if self._count == 0:
                    self._db.execute("PRAGMA incremental_vacuum")
                self._db.close()
            except sqlite3.Error:
                pass
            self._lock.release()

    def __enter__(self) -> DiskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals (mutex held) -------------------------------------------------------------
    def _delete_acked(self, count: int, size: int, readings: int) -> tuple[int, int, int]:
        acked = self._acked
        if not acked:
            return count, size, readings
        self._db.executemany("DELETE FROM batches WHERE id = ?", [(a.id,) for a in acked])
        return (
            count - len(acked),
            size - sum(a.size for a in acked),
            readings - sum(a.readings for a in acked),
        )

    def _flush_acked(self, *, force: bool = True) -> None:
        if not self._acked:
            return
        now = time.monotonic()
        if not force and len(self._acked) < FLUSH_EVERY_ACKS and now - self._flushed_at < FLUSH_EVERY_S:
            return
        self._flushed_at = now
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")  # deletions need not wait for the disk
            self._db.execute("BEGIN IMMEDIATE")
            counts = self._delete_acked(self._count, self._bytes, self._readings)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StateError(self.path, f"cannot delete acknowledged batches: {exc}") from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(f"PRAGMA synchronous={self._sync}")
        self._count, self._bytes, self._readings = counts
        self._acked.clear()

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _item(row: tuple[Any, ...]) -> OutboxItem:
    _id, device_id, seq, topic, payload, readings, encoding, queued_at = row
    return OutboxItem(device_id, seq, topic, bytes(payload), readings, encoding, float(queued_at))


def _snapshot(
    db: sqlite3.Connection,
    *,
    kind: str,
    batches: int,
    readings: int,
    size: int,
    exclude: list[int],
    max_batches: int,
    max_bytes: int,
    when_full: str,
) -> QueueSnapshot:
    skip = ",".join("?" * len(exclude))  # batches acknowledged but not yet deleted
    first = db.execute(f"SELECT first_ts FROM batches WHERE id NOT IN ({skip}) ORDER BY id LIMIT 1", exclude).fetchone()
    oldest = float(first[0]) if first else None
    counters = db.execute(
        "SELECT evicted_batches, evicted_readings, refused_batches, refused_readings, last_full_at "
        "FROM queue_counters WHERE id = 1"
    ).fetchone() or (0, 0, 0, 0, None)
    return QueueSnapshot(
        kind=kind,
        batches=batches,
        readings=readings,
        bytes=size,
        oldest_reading_ts=oldest,
        max_batches=max_batches,
        max_bytes=max_bytes,
        when_full=when_full,
        evicted_batches=int(counters[0]),
        evicted_readings=int(counters[1]),
        refused_batches=int(counters[2]),
        refused_readings=int(counters[3]),
        last_full_at=float(counters[4]) if counters[4] is not None else None,
    )


def read_snapshot(state_dir: Path, *, max_batches: int, max_bytes: int, when_full: str) -> QueueSnapshot | None:
    """The queue of ``state_dir`` read from another process (``edge-agent status``); None if absent.

    Opens the database read-only and never takes the agent's lock, so it works next to a running
    agent (WAL readers do not block the writer).
    """
    path = Path(state_dir) / DB_NAME
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        count, size, readings = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(sum(readings), 0) FROM batches"
        ).fetchone()
        return _snapshot(
            db,
            kind="disk",
            batches=int(count),
            readings=int(readings),
            size=int(size),
            exclude=[],
            max_batches=max_batches,
            max_bytes=max_bytes,
            when_full=when_full,
        )
    except sqlite3.Error:
        return None  # e.g. a memory-kind agent: the file holds only the sequence numbers
    finally:
        db.close()
