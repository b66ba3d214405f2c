"""Writes to one region store: one transaction per flush, idempotent by the primary key
(device_id, seq, idx, name, ts), so a redelivered or replayed batch is never stored twice.

Two paths, both exact:

- **Fast path** (the common case: rows never seen before). Inside a savepoint, binary ``COPY`` straight
  into ``readings``; on plain PostgreSQL the rollups ``readings_1m`` / ``readings_1h`` are then upserted
  from aggregates computed here from the same rows (one statement, rows in key order). Every row was new,
  so the rollups count each exactly once.
- **Merge path** (a redelivery or replay: the COPY hits a unique violation, or a deadlock with another
  replica writing the same rows). The savepoint is rolled back, the rows go into a temporary staging
  table by ``COPY``, and one statement inserts them with ``ON CONFLICT DO NOTHING`` in key order and folds
  only the rows actually inserted into the rollups (``RETURNING`` feeding the upserts: see
  :mod:`ingest.store.rollups`). Duplicates never count twice.

Either way the raw rows and the rollups commit or roll back together. On TimescaleDB the rollups are
continuous aggregates and the writer only inserts the raw rows, and records the ranges of rows older than
the aggregates' refresh window (a hook: :mod:`ingest.store.late_data`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from ingest.records import Row
from ingest.store import late_data, rollups
from ingest.store.connection import ENCODING_ERRORS, StoreConnection
from ingest.store.isolation import GroupsWritten, write_isolated

COLUMNS: tuple[str, ...] = Row._fields
"""The columns of ``readings`` that a :class:`ingest.records.Row` fills, in COPY order: its fields."""
_PG_TYPES = {
    "device_id": "text",
    "seq": "int8",
    "idx": "int4",
    "name": "text",
    "ts": "timestamptz",
    "site_id": "text",
    "origin_country": "text",
    "category": "text",
    "num": "float8",
    "txt": "text",
    "transform": "text",
    "decision_id": "uuid",
    "policy_revision": "text",
}
COPY_TYPES: tuple[str, ...] = tuple(_PG_TYPES[column] for column in COLUMNS)
"""The PostgreSQL type of each column, in order: binary ``COPY`` of region rows."""
# Where rollups.aggregate_rows finds the columns it aggregates (it takes positions).
_AGGREGATED = {
    "device": COLUMNS.index("device_id"),
    "name": COLUMNS.index("name"),
    "ts": COLUMNS.index("ts"),
    "num": COLUMNS.index("num"),
}
_COLS = ", ".join(COLUMNS)
_STAGING = "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
# Rows in key order: concurrent writers (replicas, redeliveries) take row locks in the same order.
_MERGE = (
    f"INSERT INTO readings ({_COLS}) SELECT {_COLS} FROM readings_in ORDER BY device_id, seq, idx, name, ts"
    " ON CONFLICT DO NOTHING"
)
_MERGE_WITH_ROLLUPS = rollups.merge_with_rollups_sql(_COLS, "readings_in")


class RegionWriter:
    """A dedicated connection to one region store, reopened after a failure."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self._store = StoreConnection(name, dsn)
        self._checked: psycopg.Connection | None = None
        self._rollups = False
        self._late: late_data.LateRows | None = None  # TimescaleDB: how old a row must be to count as late
        self.merges = 0
        """Flushes that took the merge path (the rows held a duplicate): redeliveries and replays."""

    @property
    def maintains_rollups(self) -> bool:
        """Whether the last connection's store has rollup tables (plain PostgreSQL path)."""
        return self._rollups

    def write(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Commit ``rows``; return how many were new (duplicates are skipped)."""
        if not rows:
            return 0
        conn = self._store.get()
        try:
            if conn is not self._checked:  # a new connection: is this a plain or a TimescaleDB store?
                with conn.transaction():
                    self._rollups = rollups.maintained_at_write(conn)
                    self._late = None if self._rollups else late_data.LateRows.of_store(conn)
                self._checked = conn
            with conn.transaction(), conn.cursor() as cur:
                if self._late is not None:  # late-data hook (TimescaleDB), in the transaction of the rows
                    self._late.record(cur, rows)
                try:
                    with conn.transaction():  # a savepoint: a duplicate undoes only the fast path
                        self._copy(cur, "readings", rows)
                        if self._rollups:
                            cur.execute(
                                rollups.UPSERT_AGGREGATES_SQL,
                                rollups.upsert_aggregates_params(rollups.aggregate_rows(rows, **_AGGREGATED)),
                            )
                    return len(rows)
                except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                    self.merges += 1
                cur.execute(_STAGING)
                self._copy(cur, "readings_in", rows)
                if self._rollups:
                    cur.execute(_MERGE_WITH_ROLLUPS)
                    new = cur.fetchone()
                    return int(new[0]) if new else 0
                cur.execute(_MERGE)
                return cur.rowcount
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            self._checked = None
            raise self._store.error(exc) from None

    def write_groups(self, groups: Sequence[Sequence[tuple[object, ...]]]) -> GroupsWritten:
        """Commit the rows of several messages (a group each) in one transaction; if the store refuses the data,
        find the groups at fault by writing each in its own transaction (docs/message-isolation.md)."""
        return write_isolated(self.name, lambda some: self.write([row for group in some for row in group]), groups)

    @staticmethod
    def _copy(cur: psycopg.Cursor, table: str, rows: Sequence[tuple[object, ...]]) -> None:
        with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(COPY_TYPES))
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self._store.close()
        self._checked = None
