"""Writes to one region store: binary COPY into a staging table, then an idempotent insert.

One transaction per flush: the rows of many messages are committed together, and a redelivered
or replayed batch hits the primary key (device_id, seq, idx, name, ts) and is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from ingest.store.connection import StoreConnection

COLUMNS = ("device_id", "seq", "idx", "name", "ts", "site_id", "origin_country", "category", "num", "txt",
           "transform", "decision_id", "policy_revision")
_TYPES = ("text", "int8", "int4", "text", "timestamptz", "text", "text", "text", "float8", "text", "text",
          "uuid", "text")
_COLS = ", ".join(COLUMNS)
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MERGE = f"INSERT INTO readings ({_COLS}) SELECT {_COLS} FROM readings_in ON CONFLICT DO NOTHING"


class RegionWriter:
    """A dedicated connection to one region store, reopened after a failure."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self._store = StoreConnection(name, dsn)

    def write(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Commit ``rows``; return how many were new (duplicates are skipped)."""
        if not rows:
            return 0
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_STAGING)
                with cur.copy(f"COPY readings_in ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(_TYPES))
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_MERGE)
                return cur.rowcount
        except psycopg.Error as exc:
            raise self._store.error(exc) from None

    def close(self) -> None:
        self._store.close()
