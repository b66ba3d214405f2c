"""Writes to one region store: binary COPY into a staging table, then an idempotent insert.

One transaction per flush: the rows of many messages are committed together, and a redelivered
or replayed batch hits the primary key (device_id, seq, idx, name, ts) and is ignored.

On plain PostgreSQL the same statement also maintains the rollups ``readings_1m`` / ``readings_1h``
from the rows that were actually inserted (``INSERT ... ON CONFLICT DO NOTHING RETURNING`` feeding the
rollup upserts: see :mod:`ingest.store.rollups`), so duplicates never count twice and the rollups
commit or roll back with the raw rows. On TimescaleDB the rollups are continuous aggregates and the
writer only inserts the raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from ingest.store import rollups
from ingest.store.connection import StoreConnection

COLUMNS = ("device_id", "seq", "idx", "name", "ts", "site_id", "origin_country", "category", "num", "txt",
           "transform", "decision_id", "policy_revision")
_TYPES = ("text", "int8", "int4", "text", "timestamptz", "text", "text", "text", "float8", "text", "text",
          "uuid", "text")
_COLS = ", ".join(COLUMNS)
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
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
                self._checked = conn
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_STAGING)
                with cur.copy(f"COPY readings_in ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(_TYPES))
                    for row in rows:
                        copy.write_row(row)
                if self._rollups:
                    cur.execute(_MERGE_WITH_ROLLUPS)
                    new = cur.fetchone()
                    return int(new[0]) if new else 0
                cur.execute(_MERGE)
                return cur.rowcount
        except psycopg.Error as exc:
            self._checked = None
            raise self._store.error(exc) from None

    def close(self) -> None:
        self._store.close()
        self._checked = None
