import threading

import psycopg

from devstack import PostgresServer
from ingest.store.migrate import enable_timescaledb, migrate, migration_files


def test_migrations_are_ordered_and_named() -> None:
    versions = [v for v, _ in migration_files("region")]
    assert versions == sorted(versions) and versions[0].startswith("0001_")


def test_migrate_twice_and_concurrently(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("migrate_concurrent")
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(dsn, "region", store="r"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = [v for r in results for v in r]
    assert applied == [v for v, _ in migration_files("region")]  # each version applied exactly once
    assert migrate(dsn, "region", store="r") == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)


def test_plain_postgresql_path_without_timescaledb(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("no_timescale")
    migrate(dsn, "region", store="r")
    assert enable_timescaledb(dsn, store="r", mode="auto") is False
    assert enable_timescaledb(dsn, store="r", mode="off") is False
