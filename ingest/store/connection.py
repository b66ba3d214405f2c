"""A dedicated connection to one store, reopened after a failure; errors name the store."""

from __future__ import annotations

import contextlib

import psycopg

from ingest.errors import StoreUnavailableError


class StoreConnection:
    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self.dsn = dsn
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(self.dsn, connect_timeout=5)
            except psycopg.OperationalError as exc:
                raise self.error(exc) from None
        return self._conn

    def error(self, exc: psycopg.Error) -> StoreUnavailableError:
        """Translate a driver error at the boundary (and drop the connection: it may be broken)."""
        self.close()
        lines = str(exc).strip().splitlines()
        return StoreUnavailableError(self.name, lines[0] if lines else type(exc).__name__)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
