"""Shared fixtures: real PostgreSQL and Mosquitto servers on free loopback ports.

Nothing is skipped: if a server cannot start, the fixture fails with the component's own error
(binary missing, port in use, log tail).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import MosquittoServer, PostgresServer
from ingest.registry import Registry, load_registry
from ingest.store.migrate import migrate

REPO_ROOT = Path(__file__).resolve().parent.parent
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer(settings={"fsync": "off", "synchronous_commit": "off"})
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start PostgreSQL for the tests: {exc}", pytrace=False)
    yield server
    server.cleanup()


@pytest.fixture
def mqtt_broker() -> Iterator[MosquittoServer]:
    server = MosquittoServer()
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start Mosquitto for the tests: {exc}", pytrace=False)
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(REGISTRY_FILE)


def fresh_control(pg: PostgresServer) -> str:
    """A new, migrated control database."""
    control = pg.create_database(f"t{next(_db_counter)}_control")
    migrate(control, "control", store="control")
    return control


@pytest.fixture
def control(pg_server: PostgresServer) -> str:
    """A new, migrated control database on the session's PostgreSQL (a test module may define its own)."""
    return fresh_control(pg_server)


def fresh_databases(pg: PostgresServer, registry: Registry) -> tuple[str, dict[str, str]]:
    """A new, migrated control database and one region database per registry region."""
    n = next(_db_counter)
    control = pg.create_database(f"t{n}_control")
    migrate(control, "control", store="control")
    regions = {}
    for region in registry.regions:
        dsn = pg.create_database(f"t{n}_{region.replace('-', '_')}")
        migrate(dsn, "region", store=region)
        regions[region] = dsn
    return control, regions


@pytest.fixture
def databases(pg_server: PostgresServer, registry: Registry) -> tuple[str, dict[str, str]]:
    return fresh_databases(pg_server, registry)
