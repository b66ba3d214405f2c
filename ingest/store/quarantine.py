"""Quarantined payloads in the region where the policy lets them live, and their release."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

from ingest.store.connection import ENCODING_ERRORS, StoreConnection

_INSERT = (
    "INSERT INTO quarantine_payloads (quarantine_id, topic, payload) VALUES (%s, %s, %s)"
    " ON CONFLICT (quarantine_id) DO NOTHING"
)


class QuarantineWriter:
    """Writes held payloads to one region store (rare: its own connection, opened on demand)."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self._store = StoreConnection(name, dsn)

    def write(self, items: Sequence[tuple[uuid.UUID, str, bytes]]) -> int:
        """Hold ``items`` (quarantine id, topic, payload); idempotent. Returns how many were given."""
        if not items:
            return 0
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, list(items))
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None
        return len(items)

    def close(self) -> None:
        self._store.close()
