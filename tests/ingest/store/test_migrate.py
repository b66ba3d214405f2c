"""Versioned migrations: ordered, applied once (twice, concurrently), per backend, and upgrades keep rows."""

import threading
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devstack import PostgresServer
from ingest.errors import StoreUnavailableError
from ingest.store import partitions, rollups
from ingest.store.migrate import (
    enable_timescaledb,
    migrate,
    migration_files,
    migrations,
    store_backend,
    timescaledb_available,
)


def test_migrations_are_ordered_and_named() -> None:
    plain = [v for v, _ in migration_files("region", "plain")]
    timescale = [v for v, _ in migration_files("region", "timescaledb")]
    assert plain == sorted(plain) and timescale == sorted(timescale)
    assert plain[:3] == ["0001_readings", "0002_partitioned_readings", "0003_rollups"]
    assert timescale[:3] == ["0001_readings", "0002_timescaledb_hypertable", "0003_timescaledb_rollups"]
    # files without a backend suffix (0001, the quarantine table...) apply to both
    common = {m.version for m in migrations("region") if m.backend is None}
    assert "0001_readings" in common and common <= set(plain) and common <= set(timescale)
    assert all(v[:4].isdigit() and v[4] == "_" for v in plain + timescale)


@pytest.mark.plain_only
def test_migrate_twice_and_concurrently(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("migrate_concurrent")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(dsn, "region", store="r"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = [v for r in results for v in r]
    expected = [v for v, _ in migration_files("region", "plain")]
    assert sorted(applied) == expected  # each version applied exactly once, by one of the replicas
    assert migrate(dsn, "region", store="r") == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)
        recorded = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY applied_at, version")]
        assert recorded == expected  # and in version order
        assert store_backend(conn) == "plain"
        assert partitions.is_partitioned(conn)
        assert rollups.maintained_at_write(conn)


@pytest.mark.plain_only
def test_plain_postgresql_path_without_timescaledb(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("no_timescale")
    with psycopg.connect(dsn) as conn:
        assert timescaledb_available(conn) is False
    migrate(dsn, "region", store="r")
    assert enable_timescaledb(dsn, store="r", mode="auto") is False
    assert enable_timescaledb(dsn, store="r", mode="off") is False
    with pytest.raises(StoreUnavailableError, match="store r: INGEST_TIMESCALEDB=on"):
        enable_timescaledb(dsn, store="r", mode="on")


@pytest.mark.plain_only
def test_mode_on_without_the_extension_names_the_store(pg_server: PostgresServer) -> None:
    fresh = pg_server.create_database("timescale_required")
    with pytest.raises(StoreUnavailableError, match="store eu-central: INGEST_TIMESCALEDB=on but the timescaledb"):
        migrate(fresh, "region", store="eu-central", timescaledb="on")
    plain = pg_server.create_database("timescale_required_plain")
    migrate(plain, "region", store="eu-central", timescaledb="off")
    with pytest.raises(StoreUnavailableError, match="created on plain PostgreSQL"):
        migrate(plain, "region", store="eu-central", timescaledb="on")
    assert migrate(plain, "region", store="eu-central", timescaledb="auto") == []  # the backend is kept


@pytest.mark.plain_only
def test_upgrade_of_a_store_created_before_partitioning_keeps_its_rows(pg_server: PostgresServer) -> None:
    """A store migrated by the previous version (0001 only, unpartitioned readings, rows in it)."""
    dsn = pg_server.create_database("migrate_upgrade")
    version, sql = migration_files("region")[0]
    ts = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(sql)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        for i, value in enumerate((1.0, 2.0, 6.0)):
            conn.execute(
                "INSERT INTO readings (device_id, seq, idx, name, ts, site_id, origin_country, category, num,"
                " decision_id, policy_revision) VALUES ('d', 1, %s, 'p', %s, 's', 'DE', 'machine', %s, %s, 'r')",
                (i, ts, value, uuid.uuid4()),
            )
    applied = migrate(dsn, "region", store="r")
    assert applied[:2] == ["0002_partitioned_readings", "0003_rollups"]
    with psycopg.connect(dsn) as conn:
        assert partitions.is_partitioned(conn)
        assert conn.execute("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1").fetchall() == [
            ("readings_default", 3)
        ]
        assert conn.execute("SELECT count, sum, min, max FROM readings_1h").fetchall() == [(3, 9.0, 1.0, 6.0)]
        assert rollups.verify(conn, start=ts, end=ts) == []
        assert conn.execute("SELECT to_regclass('readings_v1')").fetchone() == (None,)


def _migrate_by_hand(conn: psycopg.Connection[Any], kind: Literal["region", "control"], *, before: str) -> None:
    """A store of an earlier version: the migrations of ``kind`` before ``before`` applied and recorded as
    ``migrate`` records them."""
    conn.execute(
        "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, sql in migration_files(kind):
        if version < before:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


def test_upgrade_of_a_control_store_moves_the_decision_documents_out_of_the_log(pg_server: PostgresServer) -> None:
    """A control store of the previous version (0001-0005, documents in every decision row) keeps every
    decision, readable through the ``decisions`` view as before, each distinct document stored once."""
    dsn = pg_server.create_database("migrate_control_upgrade")
    inputs = [{"origin": "DE", "destination": "US", "category": c} for c in ("machine", "personal")]
    with psycopg.connect(dsn) as conn:
        _migrate_by_hand(conn, "control", before="0006")
        for seq in range(1, 11):
            conn.execute(
                "INSERT INTO decisions (decision_id, device_id, seq, site_id, origin_country, category, region,"
                " destination_country, outcome, allow, localization, requires, transforms, reasons, policy_revision,"
                " readings, input) VALUES (%s, 'd', %s, 's', 'DE', %s, 'us-east', 'US', 'stored', true, 'none',"
                " '[\"SCC\"]', '{}', '[\"why\"]', 'sha256:r', 5, %s)",
                (uuid.uuid4(), seq, inputs[seq % 2]["category"], Jsonb(inputs[seq % 2])),
            )
        before = conn.execute(
            "SELECT decision_id, decided_at, seq, category, allow, requires, reasons, input FROM decisions ORDER BY seq"
        ).fetchall()
    assert migrate(dsn, "control", store="control")[0] == "0006_decision_docs"
    with psycopg.connect(dsn) as conn:
        after = conn.execute(
            "SELECT decision_id, decided_at, seq, category, allow, requires, reasons, input FROM decisions ORDER BY seq"
        ).fetchall()
        assert after == before
        assert conn.execute("SELECT count(*) FROM decision_docs").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM decision_log WHERE doc_id IS NULL").fetchone() == (0,)


def test_upgrade_of_a_control_store_keeps_per_message_decisions_readable(pg_server: PostgresServer) -> None:
    """A control store of the previous version (0006-0019, one log row per message x category x region) upgraded
    to one row per distinct decision per flush: every decision reads back through the ``decisions`` view exactly as
    before (ids, documents, seqs, readings), and new rows group."""
    dsn = pg_server.create_database("migrate_control_groups")
    with psycopg.connect(dsn) as conn:
        _migrate_by_hand(conn, "control", before="0020")
        for seq in range(1, 7):
            for region in ("eu-central", "us-east"):
                conn.execute(
                    "INSERT INTO decisions (decision_id, device_id, seq, site_id, origin_country, category, region,"
                    " destination_country, outcome, allow, localization, requires, transforms, reasons,"
                    " policy_revision, readings, input) VALUES (%s, 'd', %s, 's', 'DE', 'machine', %s, 'US', 'stored',"
                    " true, 'none', '[]', '{}', '[\"ok\"]', 'sha256:r', %s, %s)",
                    (uuid.uuid4(), seq, region, seq * 10, Jsonb({"origin": "DE", "category": "machine"})),
                )
        before = conn.execute("SELECT * FROM decisions ORDER BY seq, region").fetchall()
    assert migrate(dsn, "control", store="control")[0] == "0020_decision_groups"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT * FROM decisions ORDER BY seq, region").fetchall() == before
        assert conn.execute("SELECT count(*), sum(cardinality(seqs)) FROM decision_log").fetchone() == (12, 12)
        # a seed or script inserting through the view still logs (one row for its message)
        conn.execute(
            "INSERT INTO decisions (decision_id, device_id, seq, site_id, origin_country, category, region,"
            " destination_country, outcome, allow, localization, requires, transforms, reasons, policy_revision,"
            " readings, input) VALUES (%s, 'd', 7, 's', 'DE', 'machine', 'us-east', 'US', 'stored', true, 'none',"
            " '[]', '{}', '[\"ok\"]', 'sha256:r', 70, '{}')",
            (uuid.uuid4(),),
        )
        assert conn.execute("SELECT seqs, readings FROM decision_log WHERE first_seq = 7").fetchone() == ([7], [70])
