"""What PostgreSQL did during each timed window: WAL bytes written, and what its client backends waited on.

- **WAL**: ``pg_current_wal_insert_lsn()`` at the window's start and end (the whole server: every database).
  The insert position, not ``pg_current_wal_lsn()`` (the write position), which lags behind what was
  generated until the WAL writer catches up (with ``synchronous_commit=off``, by up to its delay).
  Divided by the rows a window stored, it shows whether the ingest writes more per row than the bulk
  load does (indexes, rollups, decision log, savepoints).
- **Waits**: a thread asks ``pg_stat_activity`` every ``period_s`` which client backends are active
  and on what they wait (``wait_event_type``/``wait_event``; none = running on a CPU or runnable). The
  result is the average number of backends per state over the window, e.g. ``LWLock:WALWrite 0.31``
  = on average 0.31 backends were waiting for the WAL to be written and flushed.

The sampling is one small query every 20 ms on its own connection; its CPU is part of what the
window measures (PostgreSQL's share in the role breakdown).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import psycopg

_ACTIVE = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
)


@dataclass
class _Open:
    lsn: int
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    counts: Counter[str] = field(default_factory=Counter)
    samples: int = 0


class PostgresWatch:
    """Per-window WAL bytes and average active backends by wait event, keyed by the window's name."""

    def __init__(self, dsn: str, only: set[str], period_s: float = 0.02) -> None:
        self.dsn = dsn
        self.only = only  # windows to watch: not the in-process stages, whose timing a sampler thread would touch
        self.period_s = period_s
        self.wal_bytes: dict[str, int] = {}
        self.waits: dict[str, dict[str, float]] = {}
        self._open: dict[str, _Open] = {}

    def _lsn(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").fetchone()
        assert row is not None
        return int(row[0])

    def start(self, key: str) -> None:
        if key not in self.only:
            return
        window = _Open(self._lsn())
        window.thread = threading.Thread(target=self._sample, args=(window,), name=f"pgwatch-{key}", daemon=True)
        self._open[key] = window
        window.thread.start()

    def _sample(self, window: _Open) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not window.stop.is_set():
                window.counts.update(row[0] for row in conn.execute(_ACTIVE))
                window.samples += 1
                window.stop.wait(self.period_s)

    def samples(self, key: str) -> int:
        """Samples taken so far in an open window (0 when it is not open)."""
        window = self._open.get(key)
        return window.samples if window is not None else 0

    def stop(self, key: str) -> None:
        window = self._open.pop(key, None)
        if window is None:
            return
        window.stop.set()
        if window.thread is not None:
            window.thread.join(10)
        self.wal_bytes[key] = self._lsn() - window.lsn
        n = max(1, window.samples)
        self.waits[key] = {event: count / n for event, count in window.counts.most_common()}


def waits_line(waits: dict[str, float], limit: int = 6) -> str:
    """``CPU 0.60, LWLock:WALWrite 0.31, ...``: the most frequent states, average backends."""
    shown = [f"{event} {avg:.2f}" for event, avg in list(waits.items())[:limit] if avg >= 0.005]
    return ", ".join(shown) if shown else "no active backend sampled"
