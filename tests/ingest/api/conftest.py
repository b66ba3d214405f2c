"""A real PostgreSQL holding a control store and the four region stores of the demo registry, seeded with
the known rows of ``api_seed``, and a TestClient on ``create_app(runtime)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack import PostgresServer
from ingest.api import create_app
from ingest.auth.roles import Role
from ingest.registry import Registry, load_registry
from ingest.runtime import Runtime
from ingest.store.migrate import enable_timescaledb, migrate
from ingest.store.options import StoreOptions
from tests import backend
from tests.ingest.api.api_seed import (
    FAST,
    REGISTRY_FILE,
    STORE_RETENTION_DAYS,
    FakePipeline,
    build_runtime,
    close_runtime,
    region_db_name,
    seed_control,
    seed_region,
)
from tests.ingest.api.auth_support import bearer, issue_token


@pytest.fixture(scope="session")
def api_registry() -> Registry:
    return load_registry(REGISTRY_FILE)


@pytest.fixture(scope="session")
def api_pg() -> Iterator[PostgresServer]:
    server = backend.postgres_server(settings={"fsync": "off"})
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
        migrate(regions[region], "region", store=region, timescaledb=backend.region_mode())
        # as the service does at start: TimescaleDB policies (their jobs are part of the health)
        enable_timescaledb(
            regions[region],
            store=region,
            mode=backend.region_mode(),
            options=StoreOptions(retention_days=STORE_RETENTION_DAYS),
        )
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
def admin_token(api_dsns: tuple[str, dict[str, str]]) -> str:
    """A token of a user with every role and every region (what the tests that are not about auth use)."""
    return issue_token(api_dsns[0], list(Role), None, name="test-admin")[1]


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime, settings=FAST)


@pytest.fixture(scope="session")
def client(app: FastAPI, admin_token: str) -> TestClient:
    """Authenticated as ``test-admin`` (every role and region) unless a request sends its own Authorization."""
    return TestClient(app, headers=bearer(admin_token))


@pytest.fixture(scope="session")
def anonymous(app: FastAPI) -> TestClient:
    """No Authorization header."""
    return TestClient(app)


@pytest.fixture
def token_for(api_dsns: tuple[str, dict[str, str]]) -> Callable[..., dict[str, str]]:
    """``token_for(Role.ENGINEER, regions={"eu-central"})`` -> headers of a new user's token."""

    def make(*roles: Role, regions: Iterable[str] | None = None) -> dict[str, str]:
        return bearer(issue_token(api_dsns[0], roles, regions)[1])

    return make


@pytest.fixture
def pipeline(fake_pipeline: FakePipeline) -> Iterator[FakePipeline]:
    """The session's fake pipeline, restored after a test that changes it."""
    yield fake_pipeline
    fake_pipeline.is_healthy = True
    fake_pipeline.counters = FakePipeline.default_snapshot()
