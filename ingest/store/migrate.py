"""Versioned schema migrations, applied on start: safe to run twice and from several replicas at once.

Migrations are the ``NNNN_name.sql`` files of ``migrations/<kind>/``, applied in order inside one
transaction each, under a transaction-level advisory lock so concurrent replicas serialise.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import psycopg

from ingest.errors import StoreUnavailableError

Kind = Literal["region", "control"]
_LOCK_KEY = 0x7E1E_0001


def migration_files(kind: Kind) -> list[tuple[str, str]]:
    """(version, sql) of every migration of ``kind``, sorted by version."""
    folder = resources.files("ingest.store") / "migrations" / kind
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (folder / name).read_text(encoding="utf-8")) for name in files]


def migrate(dsn: str, kind: Kind, *, store: str) -> list[str]:
    """Apply pending migrations of ``kind`` to ``dsn``; return the versions applied now."""
    applied_now: list[str] = []
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            for version, sql in migration_files(kind):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                    ).fetchone()
                    if done:
                        continue
                    conn.execute(sql)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    applied_now.append(version)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(store, f"cannot migrate: {exc}".strip()) from None
    return applied_now


def timescaledb_available(conn: psycopg.Connection) -> bool:
    """True when the timescaledb extension can be created in this database."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def enable_timescaledb(dsn: str, *, store: str, mode: Literal["auto", "on", "off"]) -> bool:
    """Turn ``readings`` into a hypertable where the extension exists (production images).

    Returns whether TimescaleDB is in use. ``mode=on`` fails when it is missing; ``off`` never uses it.
    """
    if mode == "off":
        return False
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        if not timescaledb_available(conn):
            if mode == "on":
                raise StoreUnavailableError(store, "INGEST_TIMESCALEDB=on but the extension is not installed")
            return False
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute(
                "SELECT create_hypertable('readings', by_range('ts', INTERVAL '1 day'),"
                " if_not_exists => TRUE, migrate_data => TRUE)"
            )
    return True
