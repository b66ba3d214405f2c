"""Shared fixtures: real PostgreSQL and Mosquitto servers on free loopback ports, and the store backend
switch (``--store-backend plain|timescaledb``: tests/backend.py).

Nothing is skipped: if a server cannot start, the fixture fails with the component's own error
(binary missing, port in use, log tail).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import MosquittoServer, PostgresServer
from devstack.postgres import find_pg_bin, timescaledb_installed
from ingest.registry import Registry, load_registry
from ingest.store.migrate import enable_timescaledb, migrate
from ingest.store.options import StoreOptions
from tests import backend


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    """Warnings are errors: a file, socket or connection a test leaves open must fail that test, not whichever
    test the garbage collector happens to run in later. Collecting after each test puts the ResourceWarning in
    the teardown of the test that leaked."""
    yield
    gc.collect()


def pytest_collection_finish() -> None:
    """What the imports built (modules, the policy's engines, pydantic's schemas) is never garbage: frozen, the
    collection after each test only walks what the tests made."""
    gc.freeze()


REPO_ROOT = Path(__file__).resolve().parent.parent
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
_db_counter = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-backend",
        choices=backend.BACKENDS,
        default="plain",
        help="region stores of the store, API and end-to-end tests: plain PostgreSQL (default) or TimescaleDB "
        "(preloaded by devstack; tests marked plain_only are deselected)",
    )


def pytest_configure(config: pytest.Config) -> None:
    backend.SELECTED = config.getoption("--store-backend")
    if backend.timescaledb():
        bin_dir = find_pg_bin()
        if timescaledb_installed(bin_dir) is None:
            raise pytest.UsageError(
                f"--store-backend timescaledb: TimescaleDB is not installed for the PostgreSQL in {bin_dir} "
                "(no timescaledb.control in its share/extension directory); install one built for that "
                "PostgreSQL version or set PG_BIN to a PostgreSQL that has it"
            )


def pytest_report_header(config: pytest.Config) -> str:  # noqa: ARG001 (hook signature)
    return f"store backend: {backend.SELECTED}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not backend.timescaledb():
        return
    deselected = [item for item in items if item.get_closest_marker("plain_only")]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker("plain_only")]
        config.hook.pytest_deselected(items=deselected)
        config.stash[_PLAIN_ONLY] = len(deselected)


_PLAIN_ONLY = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if backend.timescaledb():
        terminalreporter.write_line(
            f"store backend timescaledb: {config.stash.get(_PLAIN_ONLY, 0)} plain_only test(s) deselected"
        )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = backend.postgres_server(settings={"fsync": "off", "synchronous_commit": "off"})
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
        migrate(dsn, "region", store=region, timescaledb=backend.region_mode())
        enable_timescaledb(dsn, store=region, mode=backend.region_mode(), options=StoreOptions())
        regions[region] = dsn
    return control, regions


@pytest.fixture
def databases(pg_server: PostgresServer, registry: Registry) -> tuple[str, dict[str, str]]:
    return fresh_databases(pg_server, registry)
