"""GET /health, /stats, /metrics, /schema/telemetry, the OpenAPI document, and a region going down."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import ConnectionPool

import wire
from devstack import PostgresServer
from ingest.api import create_app, db
from ingest.api.config import load_api_settings
from ingest.auth.roles import Role
from ingest.errors import ConfigError, StoreUnavailableError
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store.migrate import enable_timescaledb, migrate
from ingest.store.options import StoreOptions
from tests import backend
from tests.ingest.api.api_seed import (
    FAST,
    REVISION,
    STORE_RETENTION_DAYS,
    FakePipeline,
    build_runtime,
    close_runtime,
    seed_region,
)
from tests.ingest.api.auth_support import bearer, issue_token

REGIONS = ("eu-central", "us-east", "cn-north", "ap-southeast")
ALL_CHECKS = {"control", *(f"region:{r}" for r in REGIONS), "pipeline", "policy"}
# TimescaleDB stores (--store-backend timescaledb) add the health of their background jobs
JOB_CHECKS = {f"jobs:{r}" for r in REGIONS} if backend.timescaledb() else set()


def test_health_ok(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["policy_revision"] == REVISION
    assert set(body["checks"]) == ALL_CHECKS | JOB_CHECKS
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["region:eu-central"]["detail"] == "reachable"
    assert body["checks"]["region:eu-central"]["latency_ms"] >= 0
    assert body["checks"]["policy"]["detail"] == f"revision {REVISION}"


def test_health_degraded_when_pipeline_unhealthy(client: TestClient, pipeline: FakePipeline) -> None:
    pipeline.is_healthy = False
    pipeline.counters["broker_connected"] = False
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["pipeline"] == {
        "ok": False,
        "detail": "unhealthy: broker not connected",
        "latency_ms": None,
    }
    assert body["checks"]["control"]["ok"] is True


def test_api_only_process_has_no_pipeline(runtime: Runtime, admin_token: str) -> None:
    client = TestClient(
        create_app(dataclasses.replace(runtime, pipeline=None), settings=FAST), headers=bearer(admin_token)
    )
    health = client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["checks"]["pipeline"]["ok"] is True
    assert client.get("/api/v1/stats").json() == {"pipeline": None}


def test_stats_pass_the_pipeline_snapshot_through(client: TestClient, pipeline: FakePipeline) -> None:
    pipeline.counters["rows_by_region"] = {"eu-central": 41, "us-east": 7}
    body = client.get("/api/v1/stats").json()
    assert body == {**FakePipeline.default_snapshot(), "rows_by_region": {"eu-central": 41, "us-east": 7}}


def test_schema_is_the_wire_schema(client: TestClient) -> None:
    response = client.get("/api/v1/schema/telemetry")
    assert response.status_code == 200
    assert response.json() == wire.json_schema()
    assert response.json()["$id"] == "urn:residency-telemetry:wire:batch:v1"


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/api/v1/regions")
    response = client.get("/api/v1/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ingest_api_request_seconds_count"
    }
    assert counts[(("endpoint", "list_regions"), ("method", "GET"), ("status", "200"))] >= 1


def test_openapi_documents_every_endpoint_with_a_model(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"].startswith("Residency-aware telemetry")
    assert {tag["name"] for tag in spec["tags"]} >= {"health", "devices", "decisions", "rejections", "stats"}
    typed = {
        "/api/v1/health": "HealthPublic",
        "/api/v1/devices": "DevicePage",
        "/api/v1/devices/{device_id}": "DevicePublic",
        "/api/v1/devices/{device_id}/latest": "LatestPublic",
        "/api/v1/devices/{device_id}/series": "SeriesPublic",
        "/api/v1/decisions": "DecisionPage",
        "/api/v1/flows": "FlowsPublic",
        "/api/v1/rejections": "RejectionPage",
    }
    for path, model in typed.items():
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, path
    for path in ("/api/v1/regions", "/api/v1/sites"):
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["type"] == "array"
    assert "/dashboard" not in spec["paths"]


# --- a region store that goes down --------------------------------------------------------------


@pytest.fixture(scope="module")
def split_runtime(
    api_dsns: tuple[str, dict[str, str]], api_registry: Registry
) -> Iterator[tuple[Runtime, PostgresServer]]:
    """ap-southeast on its own server (so it can be stopped), the other stores on the session server."""
    control, regions = api_dsns
    server = backend.postgres_server(settings={"fsync": "off"}).start()
    try:
        dsn = server.create_database("ap_southeast")
        migrate(dsn, "region", store="ap-southeast", timescaledb=backend.region_mode())
        enable_timescaledb(
            dsn,
            store="ap-southeast",
            mode=backend.region_mode(),
            options=StoreOptions(retention_days=STORE_RETENTION_DAYS),
        )
        seed_region(dsn, "ap-southeast", api_registry)
        runtime = build_runtime(control, {**regions, "ap-southeast": dsn}, api_registry, None)
        try:
            yield runtime, server
        finally:
            close_runtime(runtime)
    finally:
        server.cleanup()


def test_down_region_gives_503_naming_it_without_hanging(
    split_runtime: tuple[Runtime, PostgresServer],
) -> None:
    runtime, server = split_runtime
    admin = issue_token(runtime.settings.control_dsn, list(Role), None)[1]
    client = TestClient(create_app(runtime, settings=FAST), headers=bearer(admin))
    before = client.get("/api/v1/devices/sg-jurong-cnc-01/latest")
    assert before.status_code == 200
    assert [f["value"] for f in before.json()["fields"]] == [7.5]

    server.stop()
    for attempt in range(2):  # first with the pooled (now broken) connection, then with none available
        started = time.monotonic()
        health = client.get("/api/v1/health")
        assert time.monotonic() - started < 5, attempt
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded"
        down = body["checks"]["region:ap-southeast"]
        assert down["ok"] is False
        assert down["detail"].startswith("store 'ap-southeast' unreachable")
        assert all(body["checks"][name]["ok"] for name in ALL_CHECKS - {"region:ap-southeast"})

        started = time.monotonic()
        latest = client.get("/api/v1/devices/sg-jurong-cnc-01/latest")
        assert time.monotonic() - started < 5, attempt
        assert latest.status_code == 503
        assert latest.json()["store"] == "ap-southeast"
        assert latest.json()["detail"].startswith("store 'ap-southeast' unavailable")
        assert latest.headers["retry-after"] == "5"

    # the other regions keep answering
    assert client.get("/api/v1/devices/de-munich-cnc-01/latest").status_code == 200


def test_unusable_control_store_gives_503_naming_it(runtime: Runtime, admin_token: str) -> None:
    closed = ConnectionPool(runtime.settings.control_dsn, open=False)  # never opened: every checkout fails at once
    client = TestClient(
        create_app(dataclasses.replace(runtime, control=closed), settings=FAST), headers=bearer(admin_token)
    )
    # every authenticated request needs the control store (the token is checked there), region reads too
    for path in (
        "/api/v1/devices",
        "/api/v1/devices/de-munich-cnc-01",
        "/api/v1/decisions",
        "/api/v1/flows",
        "/api/v1/rejections",
        "/api/v1/devices/de-munich-cnc-01/latest",
    ):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.json() == {
            "detail": "store 'control' unavailable: connection pool is closed",
            "store": "control",
        }
    health = client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.json()["checks"]["control"]["ok"] is False


def test_slow_query_is_cut_by_the_statement_timeout(runtime: Runtime) -> None:
    started = time.monotonic()
    with (
        pytest.raises(StoreUnavailableError) as info,
        db.read(runtime.regions["eu-central"], store="eu-central", pool_timeout_s=1, statement_timeout_ms=100) as cur,
    ):
        cur.execute("SELECT pg_sleep(5)")
    assert time.monotonic() - started < 3
    assert (info.value.store, info.value.reason) == ("eu-central", "query exceeded 100 ms")
    # the pooled connection is still usable, and the timeout did not leak into the next transaction
    with db.read(runtime.regions["eu-central"], store="eu-central", pool_timeout_s=1, statement_timeout_ms=5000) as cur:
        assert cur.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "5s"}


def test_api_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_API_POOL_TIMEOUT_S", "0.5")
    assert load_api_settings().pool_timeout_s == 0.5
    monkeypatch.setenv("INGEST_API_MAX_SERIES_BUCKETS", "none")
    with pytest.raises(ConfigError, match="INGEST_API_MAX_SERIES_BUCKETS"):
        load_api_settings()
