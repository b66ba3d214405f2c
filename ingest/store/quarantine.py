"""Quarantined payloads in the region where the policy lets them live, and their release."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

from ingest.store.connection import StoreConnection

_INSERT = (
    "INSERT INTO quarantine_payloads (quarantine_id, topic, payload) VALUES (%s, %s, %s)"
    " ON CONFLICT (quarantine_id) DO NOTHING"
)


class QuarantineWriter:
    """Writes held payloads to one region store (rare: its own connection, opened on demand)."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self._store = StoreConnection(name, dsn)

    def write(self, items: Sequence[tuple[uuid.UUID, str, bytes]]) -> None:
        if not items:
            return
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, list(items))
        except psycopg.Error as exc:
            raise self._store.error(exc) from None

    def close(self) -> None:
        self._store.close()
