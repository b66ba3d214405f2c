"""A dedicated connection to one store, reopened after a failure; errors name the store.

Driver errors are translated here, at the boundary, into the two kinds the pipeline acts on
(docs/message-isolation.md): a *data error* (:class:`StoreDataError`: the store refused what was written;
retrying cannot help, the message at fault is quarantined) or an *outage* (:class:`StoreUnavailableError`:
wait and retry). Anything that is not clearly about the data is an outage: holding a message back is safe,
quarantining good data because a store misbehaves is not."""

from __future__ import annotations

import contextlib

import psycopg

from ingest.errors import StoreDataError, StoreUnavailableError

# SQLSTATE classes that describe the data sent, not the store: data exception, integrity constraint
# violation, program limit exceeded (a row or value too large).
DATA_ERROR_CLASSES = frozenset({"22", "23", "54"})
# Errors raised while encoding a value to send it (psycopg's dumpers), before the server sees it.
ENCODING_ERRORS = (OverflowError, ValueError, UnicodeEncodeError)


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the data written (see the module docstring)."""
    if isinstance(exc, psycopg.Error):
        sqlstate = exc.sqlstate
        if sqlstate is None:  # raised by the driver itself: only a failure to encode a value is about the data
            return isinstance(exc, psycopg.DataError) or isinstance(exc.__cause__, ENCODING_ERRORS)
        return sqlstate[:2] in DATA_ERROR_CLASSES
    return isinstance(exc, ENCODING_ERRORS)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


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

    def error(self, exc: BaseException) -> StoreUnavailableError | StoreDataError:
        """Translate a driver error at the boundary: a data error, or an outage (and then drop the connection:
        it may be broken). A data error leaves the connection usable (its transaction was rolled back)."""
        if is_data_error(exc):
            if self._conn is not None and self._conn.broken:
                self.close()
            sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
            return StoreDataError(self.name, _first_line(exc), sqlstate)
        self.close()
        return StoreUnavailableError(self.name, _first_line(exc))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
