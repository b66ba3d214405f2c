"""Shared fixtures: real PostgreSQL and Mosquitto servers on free loopback ports, and the store backend
switch (``--store-backend plain|timescaledb``: tests/backend.py).

Nothing is skipped: if a server cannot start, the fixture fails with the component's own error
(binary missing, port in use, log tail).
"""

from __future__ import annotations

import gc
import itertools
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psycopg
import pytest
from psycopg import sql

from devstack import MosquittoServer, PostgresServer
from devstack.postgres import find_pg_bin, timescaledb_installed
from ingest.registry import Registry, load_registry
from ingest.store.migrate import enable_timescaledb, migrate
from ingest.store.options import StoreOptions
from tests import backend


@pytest.fixture(scope="module", autouse=True)
def _collect_after_each_module() -> Iterator[None]:
    """What the tests of a module kept alive was frozen after each of them (below); once the module's fixtures
    are torn down (this fixture is set up before them, so it ends after them), everything is thawed and collected
    once, so that what they left open fails here, in the module that leaked it, and frozen again."""
    yield
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    """Warnings are errors: a file, socket or connection a test leaves open must fail that test, not whichever
    test the garbage collector happens to run in later. Collecting after each test puts the ResourceWarning in
    the teardown of the test that leaked.

    What survives the collection is alive after the test (fixtures of the module and the session, caches): it
    is frozen, so the next test's collection only walks what that test made. Walking the whole heap after every
    test took 0.1-1.6 s a test as the heap grew: 343 s of the two workers' time in a whole ./scripts/test run,
    36 s with the freezing (2026-12-05). Something a test made and left open is still found after that test; an
    object kept from an earlier test that a later test lets go in a cycle is found at the end of the module
    (_collect_after_each_module)."""
    yield
    gc.collect()
    gc.freeze()


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


# Test files that take long, with their seconds of test time (./scripts/test --durations on a 2-core machine,
# 2026-12-05). ./scripts/test hands files to its two workers in collection order (--dist loadfile
# --no-loadscope-reorder), and these are collected first, in this order: roughly longest first, so that the run
# does not end with one worker on a long file while the other waits (pytest-xdist's own order, most tests first,
# put these, each a few tests, last), and those that mostly wait (a server down for a minute, a cut link, kill -9)
# between those that keep a CPU busy (the benchmark's smoke run, Rego test suites, fuzzing), so that the two
# workers do not compete for the CPUs at the same time. The other files follow, most tests first. List a file
# here when it takes more than about 20 s. Not tests/ingest/api/test_api_policy.py (145 s): it would seed the
# session's API stores (tests/ingest/api/conftest.py: api_dsns, decisions aged from the moment they are seeded)
# a quarter of an hour before the other API files, and /flows' default window is 5 minutes
# (test_api_decisions.py::test_flows_over_the_default_window).
LONG_FILES: dict[str, int] = {
    "tests/bench/test_bench_ingest_smoke.py": 198,
    "tests/integration/test_faults.py": 144,
    "tests/ingest/policy_runtime/test_drafts.py": 173,
    "tests/integration/test_cells.py": 131,
    "tests/integration/test_api_schemathesis.py": 147,
    "tests/integration/test_replicas.py": 99,
    "tests/browser/test_personas_and_tools.py": 60,
    "tests/policy/test_processing.py": 105,
    "tests/devstack/test_stack_up.py": 50,
    "tests/policy/test_parity.py": 55,
    "tests/ingest/policy_runtime/test_watch.py": 42,
    "tests/policy/test_cli.py": 45,
    "tests/integration/test_workers.py": 36,
    "tests/policy/test_rego_suite.py": 44,
    "tests/edge_agent/test_cli_exit_codes.py": 36,
    "tests/policy/test_opa_client.py": 36,
    "tests/integration/test_poison_messages.py": 31,
    "tests/ingest/policy_runtime/test_active.py": 29,
    "tests/browser/test_dashboard_pages.py": 26,
    "tests/deploy/test_compose.py": 29,
    "tests/integration/test_sparkplug.py": 24,
}
_LONG_RANK = {path: rank for rank, path in enumerate(LONG_FILES)}


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _longest_files_first(items: list[pytest.Item]) -> None:
    """LONG_FILES first, in their order; then the other files, most tests first (pytest-xdist's own order).
    A stable sort by file: the tests of a file stay together and in their order."""
    per_file = Counter(_file_of(item) for item in items)
    last = len(_LONG_RANK)
    items.sort(key=lambda item: (_LONG_RANK.get(_file_of(item), last), -per_file[_file_of(item)], _file_of(item)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _longest_files_first(items)
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


# Migrated template databases, made once per server: a new database is a copy of one (CREATE DATABASE ...
# TEMPLATE, about 0.07 s) instead of an empty database migrated again (0.1-0.5 s for a control store, 0.3-1.5 s
# for a control store and four region stores). The migrations are the same SQL every time, so the copy is the
# same fresh, empty, migrated store. Region stores only on plain PostgreSQL: with TimescaleDB each store is
# migrated and configured as before.
_templates: weakref.WeakKeyDictionary[PostgresServer, set[str]] = weakref.WeakKeyDictionary()


def _migrated_copy(pg: PostgresServer, name: str, kind: Literal["control", "region"]) -> str:
    """A new database ``name`` on ``pg``: a copy of the migrated template of ``kind``, made on first use."""
    template = f"template_{kind}"
    made = _templates.setdefault(pg, set())
    if template not in made:
        dsn = pg.create_database(template)
        migrate(dsn, kind, store=f"{kind} template", timescaledb="off")
        made.add(template)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return pg.dsn(name)


def fresh_control(pg: PostgresServer) -> str:
    """A new, migrated control database."""
    return _migrated_copy(pg, f"t{next(_db_counter)}_control", "control")


@pytest.fixture
def control(pg_server: PostgresServer) -> str:
    """A new, migrated control database on the session's PostgreSQL (a test module may define its own)."""
    return fresh_control(pg_server)


def fresh_databases(pg: PostgresServer, registry: Registry) -> tuple[str, dict[str, str]]:
    """A new, migrated control database and one region database per registry region."""
    n = next(_db_counter)
    control = _migrated_copy(pg, f"t{n}_control", "control")
    regions = {}
    for region in registry.regions:
        name = f"t{n}_{region.replace('-', '_')}"
        if backend.timescaledb():
            dsn = pg.create_database(name)
            migrate(dsn, "region", store=region, timescaledb=backend.region_mode())
        else:
            dsn = _migrated_copy(pg, name, "region")
        enable_timescaledb(dsn, store=region, mode=backend.region_mode(), options=StoreOptions())
        regions[region] = dsn
    return control, regions


@pytest.fixture
def databases(pg_server: PostgresServer, registry: Registry) -> tuple[str, dict[str, str]]:
    return fresh_databases(pg_server, registry)
