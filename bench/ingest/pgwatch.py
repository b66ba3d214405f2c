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

- **Statements**: when the server has ``pg_stat_statements`` (the benchmark's server loads it:
  ``bench.ingest.stack``), its counters are reset at the window's start and its most expensive statements read
  at the end (execution time, calls, rows; every database), so a window whose PostgreSQL CPU stands out names
  the statement that took it.

The sampling is one small query every 20 ms on its own connection; its CPU is part of what the
window measures (PostgreSQL's share in the role breakdown). A window of a repeated round (``g3_workers_r2``)
is watched when its first round (``g3_workers``) is.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import psycopg

_ROUND = re.compile(r"_r\d+$")
_TOP = (
    "SELECT coalesce(d.datname, '?'), s.calls, s.total_exec_time, s.rows, s.query FROM pg_stat_statements s"
    " LEFT JOIN pg_database d ON d.oid = s.dbid ORDER BY s.total_exec_time DESC LIMIT %s"
)
_ACTIVE = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class Statement:
    """One normalised statement of pg_stat_statements over a window: its database, calls, execution time (ms, all
    calls), rows, and its text (whitespace folded, cut at 160 characters)."""

    database: str
    calls: int
    total_ms: float
    rows: int
    query: str


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
        self.statements: dict[str, list[Statement]] = {}  # the most expensive, per window
        self.statement_ms: dict[str, float] = {}  # execution time of every statement, per window
        self._open: dict[str, _Open] = {}
        self._statements: bool | None = None  # pg_stat_statements installed (None: not asked yet)

    def _has_statements(self, conn: psycopg.Connection) -> bool:
        if self._statements is None:
            row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
            self._statements = bool(row and row[0])
        return self._statements

    def _watched(self, key: str) -> bool:
        return key in self.only or _ROUND.sub("", key) in self.only

    def _lsn(self, reset: bool = False) -> int:
        """The WAL insert position; ``reset``: also zero pg_stat_statements' counters (when installed)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            if reset and self._has_statements(conn):
                conn.execute("SELECT pg_stat_statements_reset()")
            row = conn.execute("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").fetchone()
        assert row is not None
        return int(row[0])

    def _top(self, limit: int = 6) -> tuple[float, list[Statement]]:
        """Execution time of every statement (ms), and the ``limit`` most expensive."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            if not self._has_statements(conn):
                return 0.0, []
            total = conn.execute("SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements").fetchone()
            rows = conn.execute(_TOP, (limit,)).fetchall()
        return float(total[0]) if total else 0.0, [
            Statement(db, int(calls), float(ms), int(n), " ".join(str(query).split())[:160])
            for db, calls, ms, n, query in rows
        ]

    def start(self, key: str) -> None:
        if not self._watched(key):
            return
        window = _Open(self._lsn(reset=True))
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
        self.statement_ms[key], self.statements[key] = self._top()
        n = max(1, window.samples)
        self.waits[key] = {event: count / n for event, count in window.counts.most_common()}


def waits_line(waits: dict[str, float], limit: int = 6) -> str:
    """``CPU 0.60, LWLock:WALWrite 0.31, ...``: the most frequent states, average backends."""
    shown = [f"{event} {avg:.2f}" for event, avg in list(waits.items())[:limit] if avg >= 0.005]
    return ", ".join(shown) if shown else "no active backend sampled"


def statements_line(total_ms: float, statements: list[Statement], limit: int = 3) -> str:
    """``41% COPY readings (device_id, ... (region_us_east, 24 calls)``: the most expensive statements, each with its
    share of the execution time of every statement in the window (``total_ms``)."""
    total = total_ms or 1.0
    return "; ".join(
        f"{s.total_ms / total:.0%} {s.query[:40]}... ({s.database}, {s.calls:,} calls)" for s in statements[:limit]
    )
