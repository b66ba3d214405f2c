"""Read-only access to the control and region stores through their pools, with bounded waits.

Every failure to reach a store, or a query cut by ``statement_timeout``, becomes a
:class:`ingest.errors.StoreUnavailableError` naming the store, which the API answers with 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ingest.api.config import ApiSettings
from ingest.errors import StoreUnavailableError

__all__ = ["ping", "query", "read"]


@contextmanager
def read(
    pool: ConnectionPool, *, store: str, pool_timeout_s: float, statement_timeout_ms: int
) -> Iterator[psycopg.Cursor[DictRow]]:
    """A dict-row cursor inside a read-only transaction with a statement timeout."""
    try:
        with pool.connection(timeout=pool_timeout_s) as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (str(statement_timeout_ms),))
            yield cur
    except PoolTimeout:
        raise StoreUnavailableError(store, f"no connection within {pool_timeout_s:g}s") from None
    except PoolClosed:
        raise StoreUnavailableError(store, "connection pool is closed") from None
    except psycopg.errors.QueryCanceled:
        raise StoreUnavailableError(store, f"query exceeded {statement_timeout_ms} ms") from None
    except psycopg.errors.UndefinedTable as exc:
        raise StoreUnavailableError(store, f"schema not migrated: {_first_line(exc)}") from None
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(store, _first_line(exc) or "connection failed") from None


def query(
    pool: ConnectionPool, *, store: str, settings: ApiSettings
) -> AbstractContextManager[psycopg.Cursor[DictRow]]:
    """:func:`read` with the API's configured timeouts."""
    return read(
        pool, store=store, pool_timeout_s=settings.pool_timeout_s, statement_timeout_ms=settings.statement_timeout_ms
    )


def ping(pool: ConnectionPool, *, store: str, timeout_s: float) -> None:
    """``SELECT 1`` through the pool; raise StoreUnavailableError when it fails or takes too long."""
    with read(pool, store=store, pool_timeout_s=timeout_s, statement_timeout_ms=int(timeout_s * 1000)) as cur:
        cur.execute("SELECT 1")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
