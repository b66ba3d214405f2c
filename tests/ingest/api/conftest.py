"""A real PostgreSQL holding a control store and the four region stores of the demo registry, seeded with
the known rows of ``api_seed``, and a TestClient on ``create_app(runtime)``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from devstack import PostgresServer
from ingest.api import create_app
from ingest.registry import Registry, load_registry
from ingest.runtime import Runtime
from ingest.store.migrate import migrate
from tests.ingest.api.api_seed import (
    FAST,
    REGISTRY_FILE,
    FakePipeline,
    build_runtime,
    close_runtime,
    region_db_name,
    seed_control,
    seed_region,
)


@pytest.fixture(scope="session")
def api_registry() -> Registry:
    return load_registry(REGISTRY_FILE)


@pytest.fixture(scope="session")
def api_pg() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={"fsync": "off"})
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start PostgreSQL for the API tests: {exc}", pytrace=False)
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def api_dsns(api_pg: PostgresServer, api_registry: Registry) -> tuple[str, dict[str, str]]:
    """Migrated and seeded stores: (control DSN, region -> DSN)."""
    control = api_pg.create_database("api_control")
    migrate(control, "control", store="control")
    seed_control(control)
    regions: dict[str, str] = {}
    for region in api_registry.regions:
        regions[region] = api_pg.create_database(region_db_name(region))
        migrate(regions[region], "region", store=region)
        seed_region(regions[region], region, api_registry)
    return control, regions


@pytest.fixture(scope="session")
def fake_pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture(scope="session")
def runtime(
    api_dsns: tuple[str, dict[str, str]], api_registry: Registry, fake_pipeline: FakePipeline
) -> Iterator[Runtime]:
    control, regions = api_dsns
    runtime = build_runtime(control, regions, api_registry, fake_pipeline)
    yield runtime
    close_runtime(runtime)


@pytest.fixture(scope="session")
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime, settings=FAST))


@pytest.fixture
def pipeline(fake_pipeline: FakePipeline) -> Iterator[FakePipeline]:
    """The session's fake pipeline, restored after a test that changes it."""
    yield fake_pipeline
    fake_pipeline.is_healthy = True
    fake_pipeline.counters = FakePipeline.default_snapshot()
