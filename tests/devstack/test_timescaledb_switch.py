"""The TimescaleDB switch: devstack's preload and worker sizing, and ``pytest --store-backend timescaledb``
stopping at once, naming what is missing, where TimescaleDB is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import PostgresServer
from devstack.errors import ComponentError
from devstack.postgres import DEFAULT_SETTINGS, timescaledb_installed
from ingest.store.timescale import MAX_POLICIES, worker_settings
from tests.conftest import REPO_ROOT


def test_worker_settings_cover_schedulers_and_every_job() -> None:
    """One scheduler per database with the extension, every job of every store at once, plus PostgreSQL's
    parallel workers and TimescaleDB's launcher in max_worker_processes."""
    assert MAX_POLICIES == 6
    assert worker_settings(databases=4, stores=4) == {
        "max_worker_processes": "37",
        "timescaledb.max_background_workers": "28",
        "max_parallel_workers": "8",
    }
    assert worker_settings(databases=3, stores=1) == {  # a docker-compose database server
        "max_worker_processes": "18",
        "timescaledb.max_background_workers": "9",
        "max_parallel_workers": "8",
    }


def test_devstack_preloads_timescaledb_with_telemetry_off_and_sized_workers() -> None:
    server = PostgresServer(timescaledb=True, timescaledb_databases=4)
    assert server.settings["shared_preload_libraries"] == "timescaledb"
    assert server.settings["timescaledb.telemetry_level"] == "off"
    assert {k: server.settings[k] for k in worker_settings(databases=4, stores=4)} == worker_settings(
        databases=4, stores=4
    )
    assert "shared_preload_libraries" not in PostgresServer().settings
    assert PostgresServer().settings == DEFAULT_SETTINGS


def _without_timescaledb(tmp_path: Path) -> Path:
    """A stand-in for a PostgreSQL installation without TimescaleDB: only a ``pg_config`` that names a share
    directory holding no timescaledb.control (the real server binaries are not needed to get that far)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "share" / "extension").mkdir(parents=True)
    pg_config = bin_dir / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {tmp_path / 'share'}\n")
    pg_config.chmod(0o755)
    return bin_dir


def test_devstack_names_the_missing_extension(tmp_path: Path) -> None:
    bin_dir = _without_timescaledb(tmp_path)
    assert timescaledb_installed(bin_dir) is None
    os.environ["PG_BIN"], before = str(bin_dir), os.environ.get("PG_BIN")
    try:
        with pytest.raises(
            ComponentError, match=f"TimescaleDB was requested but is not installed for the PostgreSQL in {bin_dir}"
        ):
            PostgresServer(timescaledb=True).start()
    finally:
        if before is None:
            del os.environ["PG_BIN"]
        else:
            os.environ["PG_BIN"] = before


def test_store_backend_timescaledb_stops_the_run_where_it_is_missing(tmp_path: Path) -> None:
    bin_dir = _without_timescaledb(tmp_path)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/wire/test_topics.py",
            "--store-backend",
            "timescaledb",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PG_BIN": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 4, run.stdout + run.stderr  # pytest's usage error: nothing ran
    assert f"--store-backend timescaledb: TimescaleDB is not installed for the PostgreSQL in {bin_dir}" in run.stderr


def test_the_default_run_is_plain() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/wire/test_topics.py", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "store backend: plain" in run.stdout, run.stdout + run.stderr
