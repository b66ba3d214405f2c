"""The store backend the suite runs against: one switch, ``pytest --store-backend plain|timescaledb``.

- ``plain`` (the default): PostgreSQL as Debian ships it; region stores are plain (``INGEST_TIMESCALEDB=off``).
- ``timescaledb``: every PostgreSQL the store, API and end-to-end tests start preloads TimescaleDB
  (``devstack.PostgresServer(timescaledb=True)``), region stores are created with
  ``INGEST_TIMESCALEDB=on``, and tests marked ``plain_only`` (they assert the plain path's partitions
  and rollup tables) are deselected and counted in the summary. The run stops at once, naming what is
  missing, when TimescaleDB is not installed for the PostgreSQL the tests use (``PG_BIN``, or Debian's).

Set by ``tests/conftest.py`` from the option; read by the fixtures through the functions here.
"""

from __future__ import annotations

from typing import Literal

from devstack import PostgresServer

Backend = Literal["plain", "timescaledb"]
BACKENDS: tuple[Backend, ...] = ("plain", "timescaledb")
SELECTED: Backend = "plain"
# Databases a test server may hold at once with the extension (each test makes a few region stores):
# its background workers are sized for this many (ingest.store.timescale.worker_settings).
TEST_SERVER_DATABASES = 48


def timescaledb() -> bool:
    return SELECTED == "timescaledb"


def region_mode() -> Literal["on", "off"]:
    """``INGEST_TIMESCALEDB`` for the region stores the fixtures create."""
    return "on" if timescaledb() else "off"


def postgres_server(settings: dict[str, str] | None = None) -> PostgresServer:
    """A (not yet started) PostgreSQL for tests, with TimescaleDB preloaded in a timescaledb run."""
    return PostgresServer(settings=settings, timescaledb=timescaledb(), timescaledb_databases=TEST_SERVER_DATABASES)
