"""Job health of TimescaleDB stores in /health, /stores/jobs and /metrics, checked without the extension:
a store shaped by the stubs of tests/ingest/store/test_timescale_sql.py, with TimescaleDB's job_stats and
job_history views as tables holding what a real TimescaleDB showed (every run failing with "cannot drop
portal", or jobs never started). The same answers from a real TimescaleDB: ``--store-backend timescaledb``
(tests/ingest/api/test_api_health.py runs there against real jobs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest

from devstack import PostgresServer
from ingest.api import create_app
from ingest.api.service import health as health_service
from ingest.api.service import store_jobs
from ingest.auth.roles import Role
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store import rollups, timescale
from ingest.store.migrate import enable_timescaledb, migrate, migration_files
from ingest.store.options import StoreOptions
from tests import backend
from tests.conftest import fresh_control
from tests.ingest.api.api_seed import FAST, build_runtime, close_runtime
from tests.ingest.api.auth_support import bearer, issue_token
from tests.ingest.store.test_timescale_sql import STUBS

JOB_VIEWS = """
CREATE TABLE timescaledb_information.job_stats (
    job_id int PRIMARY KEY, last_run_status text, job_status text NOT NULL DEFAULT 'Scheduled',
    last_run_started_at timestamptz, last_successful_finish timestamptz, next_start timestamptz,
    total_runs bigint NOT NULL DEFAULT 0, total_failures bigint NOT NULL DEFAULT 0);
CREATE TABLE timescaledb_information.job_history (
    id serial PRIMARY KEY, job_id int NOT NULL, succeeded boolean, pid int, start_time timestamptz NOT NULL,
    err_message text);
ALTER TABLE timescaledb_information.jobs ADD COLUMN scheduled boolean NOT NULL DEFAULT TRUE;
"""
PORTAL = 'cannot drop portal "" while it is being set up'
NOW = datetime.now(UTC)


@pytest.fixture
def store(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(f"jobs_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(dsn) as conn:
        conn.execute(STUBS + JOB_VIEWS)
        conn.execute(dict(migration_files("region", "timescaledb"))["0001_readings"])
        for rollup in rollups.ROLLUPS:
            conn.execute(f"CREATE VIEW {rollup.table} AS {timescale.continuous_aggregate_query(rollup)}")
        timescale.apply_policies(conn, StoreOptions())  # 4 jobs: compression, retention, two refreshes
        # as TimescaleDB: -infinity where a job never finished successfully. The next start is 4 minutes after
        # now, when the store is made (not NOW, when the module was imported: a run that reaches this file more
        # than 19 minutes after its start would find these jobs overdue: ingest.store.jobs.OVERDUE_GRACE).
        conn.execute(
            "INSERT INTO timescaledb_information.job_stats (job_id, last_run_status, next_start,"
            " last_successful_finish, total_runs) SELECT job_id, 'Success', %s, '-infinity', 3"
            " FROM timescaledb_information.jobs",
            (datetime.now(UTC) + timedelta(minutes=4),),
        )
    return dsn


@pytest.fixture
def runtime(pg_server: PostgresServer, registry: Registry, store: str) -> Iterator[Runtime]:
    store_jobs.clear_cache()
    runtime = build_runtime(fresh_control(pg_server), {"eu-central": store}, registry, None)
    yield runtime
    close_runtime(runtime)
    store_jobs.clear_cache()


def _fail(dsn: str, proc: str, *runs: bool) -> None:
    """Runs of the job ``proc`` (on readings), oldest first: True succeeded, False failed with PORTAL."""
    with psycopg.connect(dsn) as conn:
        (job_id,) = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = 'readings'",
            (proc,),
        ).fetchone()  # type: ignore[misc]  # the job exists: one row
        for i, ok in enumerate(runs):
            conn.execute(
                "INSERT INTO timescaledb_information.job_history (job_id, succeeded, pid, start_time,"
                " err_message) VALUES (%s, %s, 4242, %s, %s)",
                (job_id, ok, NOW - timedelta(minutes=10 * (len(runs) - i)), None if ok else PORTAL),
            )
        conn.execute(
            "UPDATE timescaledb_information.job_stats SET last_run_status = %s WHERE job_id = %s",
            ("Success" if runs[-1] else "Failed", job_id),
        )


def test_failing_jobs_make_health_degraded_and_name_the_error(runtime: Runtime, store: str) -> None:
    _fail(store, "policy_compression", False, True, False, False)
    result = health_service.health(runtime=runtime, settings=FAST)
    check = result.checks["jobs:eu-central"]
    assert result.status == "degraded" and not check.ok
    assert check.detail == f"policy_compression(readings): failing: 2 consecutive failure(s), last error: {PORTAL}"


def test_healthy_jobs_pass(runtime: Runtime) -> None:
    check = health_service.health(runtime=runtime, settings=FAST).checks["jobs:eu-central"]
    assert (check.ok, check.detail) == (True, "4 TimescaleDB jobs ok")


def test_overdue_paused_and_missing_jobs(runtime: Runtime, store: str) -> None:
    with psycopg.connect(store) as conn:
        conn.execute(
            "UPDATE timescaledb_information.job_stats SET next_start = %s WHERE job_id = ("
            "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'readings_1m')",
            (NOW - timedelta(hours=2),),
        )  # never started since: no background worker free
        conn.execute("UPDATE timescaledb_information.jobs SET scheduled = FALSE WHERE hypertable_name = 'readings_1h'")
        conn.execute("DELETE FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'")
    stores = store_jobs.store_jobs_by_region(runtime, FAST)
    problems = {job.name: (job.problem or "").split(":")[0] for job in stores["eu-central"].jobs}
    assert problems == {
        "policy_compression(readings)": "missing",
        "policy_refresh_continuous_aggregate(readings_1m)": "overdue",
        "policy_refresh_continuous_aggregate(readings_1h)": "paused",
        "policy_retention(readings)": "",
    }


def test_endpoint_and_metrics(runtime: Runtime, store: str) -> None:
    _fail(store, "policy_retention", True, False)
    client = TestClient(create_app(runtime, settings=FAST))
    token = issue_token(runtime.settings.control_dsn, [Role.OPERATOR], None, name="jobs-operator")[1]
    body = client.get("/api/v1/stores/jobs", headers=bearer(token)).json()
    (eu,) = body["stores"]
    assert (eu["region"], eu["backend"], eu["ok"]) == ("eu-central", "timescaledb", False)
    retention = next(j for j in eu["jobs"] if j["name"] == "policy_retention(readings)")
    assert (retention["consecutive_failures"], retention["last_error"]) == (1, PORTAL)
    metrics = client.get("/api/v1/metrics").text
    assert 'ingest_store_job_consecutive_failures{job="policy_retention(readings)",region="eu-central"} 1.0' in metrics
    assert 'ingest_store_job_problem{job="policy_compression(readings)",region="eu-central"} 0.0' in metrics
    assert b"ingest_store_job_last_run_success" in generate_latest(REGISTRY)


def test_a_store_of_the_runs_backend(pg_server: PostgresServer, registry: Registry) -> None:
    """Plain (default run): no jobs, no jobs check. TimescaleDB (``--store-backend timescaledb``): the real
    views answer the query, every policy of the settings has a job and none has a problem yet."""
    store_jobs.clear_cache()
    dsn = pg_server.create_database(f"jobs_real_{uuid.uuid4().hex[:8]}")
    migrate(dsn, "region", store="eu-central", timescaledb=backend.region_mode())
    enable_timescaledb(dsn, store="eu-central", mode=backend.region_mode(), options=StoreOptions())
    runtime = build_runtime(fresh_control(pg_server), {"eu-central": dsn}, registry, None)
    try:
        result = health_service.health(runtime=runtime, settings=FAST)
        eu = store_jobs.store_jobs_by_region(runtime, FAST)["eu-central"]
        if backend.timescaledb():
            assert (eu.backend, eu.ok) == ("timescaledb", True), eu
            assert sorted(job.name for job in eu.jobs) == sorted(
                f"{p.proc}({p.relation})" for p in timescale.desired_policies(StoreOptions())
            )
            assert all(job.job_id is not None and job.problem is None for job in eu.jobs)
            assert result.checks["jobs:eu-central"].ok
        else:
            assert (eu.backend, eu.jobs) == ("plain", [])
            assert not any(name.startswith("jobs:") for name in result.checks)
    finally:
        close_runtime(runtime)
        store_jobs.clear_cache()
