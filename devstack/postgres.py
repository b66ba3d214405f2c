"""A throwaway PostgreSQL server from the distribution's binaries, on a free loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from devstack.errors import ComponentError
from devstack.ports import free_port
from devstack.process import as_user, chown_tree, make_owned_dir, run_as_user, spawn, stop, tail

SUPERUSER = "telemetry"
DEFAULT_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "synchronous_commit": "on",
    # The ingest commits a transaction per region and flush from several connections; with the default
    # (1/32 of shared_buffers = 8 MB) its backends queue on LWLock:WALWrite. The ingest benchmark's
    # PostgreSQL watch shows it (bench/ingest/README.md, fourth round); the compose databases use the same.
    "wal_buffers": "64MB",
}


def timescaledb_installed(bin_dir: Path) -> Path | None:
    """The ``timescaledb.control`` of the PostgreSQL in ``bin_dir`` (None when TimescaleDB is not installed
    for it; ``pg_config`` beside the server tells where its extensions live)."""
    pg_config = bin_dir / "pg_config"
    if not pg_config.exists():
        return None
    sharedir = subprocess.run(
        [str(pg_config), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    control = Path(sharedir) / "extension" / "timescaledb.control"
    return control if control.exists() else None


def find_pg_bin() -> Path:
    """Directory of initdb/postgres: $PG_BIN, Debian's /usr/lib/postgresql/<newest>/bin, or PATH."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ComponentError(
        "postgresql", "initdb not found: install PostgreSQL (apt-get install postgresql) or set PG_BIN"
    )


class PostgresServer:
    """Initialise a cluster in a new directory, start it on 127.0.0.1:<port>, create databases.

    As root it runs as the ``postgres`` account (PostgreSQL refuses root). Authentication is
    ``trust`` on loopback only: this server is for the local demo and tests, never production.

    ``timescaledb=True`` preloads TimescaleDB (it must be installed for these binaries: start fails naming
    what is missing), turns its telemetry off and sizes the background workers for
    ``timescaledb_databases`` region stores (:func:`ingest.store.timescale.worker_settings`).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        base_dir: Path | None = None,
        settings: dict[str, str] | None = None,
        timescaledb: bool = False,
        timescaledb_databases: int = 4,
    ) -> None:
        self.port = port or free_port()
        self.user = run_as_user(["postgres"])
        self._parent = base_dir
        self.timescaledb = timescaledb
        extra: dict[str, str] = {}
        if timescaledb:
            from ingest.store.timescale import worker_settings

            extra = {
                "shared_preload_libraries": "timescaledb",
                "timescaledb.telemetry_level": "off",  # a local server reports nothing anywhere
                **worker_settings(databases=timescaledb_databases, stores=timescaledb_databases),
            }
        self.settings = {**DEFAULT_SETTINGS, **extra, **(settings or {})}
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        bin_dir = find_pg_bin()
        if self.timescaledb and timescaledb_installed(bin_dir) is None:
            raise ComponentError(
                "postgresql",
                f"TimescaleDB was requested but is not installed for the PostgreSQL in {bin_dir} "
                "(no timescaledb.control in its share/extension directory): install a TimescaleDB built for "
                "this PostgreSQL's version, or point PG_BIN at a PostgreSQL that has one",
            )
        if self._parent is not None:
            self._parent.mkdir(parents=True, exist_ok=True)
        self.dir = make_owned_dir("pg-", self.user, self._parent)
        data = self.dir / "data"
        init = self._run_sync(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        )
        if init.returncode != 0:
            raise ComponentError("postgresql", f"initdb failed in {data}: {init.stdout.strip()[-800:]}")
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._proc = spawn(argv, user=self.user, log_file=self.log_file)
        self._wait_ready(timeout)
        return self

    def _run_sync(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert self.dir is not None
        chown_tree(self.dir, self.user)
        return subprocess.run(
            argv,
            capture_output=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.dir,
            **as_user(self.user),
        )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ComponentError(
                    "postgresql", f"exited with {self._proc.returncode} on port {self.port}:\n{tail(self.log_file)}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise ComponentError("postgresql", f"not ready on 127.0.0.1:{self.port} after {timeout}s: {last}")

    def create_database(self, name: str) -> str:
        """Create ``name`` if missing; return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), for fault tests."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def restart(self, timeout: float = 60.0) -> None:
        """Start the same cluster again on the same port (after stop() or kill())."""
        assert self.dir is not None
        if self.running():
            return
        bin_dir = find_pg_bin()
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.dir / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._proc = spawn(argv, user=self.user, log_file=self.log_file)
        self._wait_ready(timeout)

    def stop(self) -> None:
        import signal

        if self._proc is not None:
            stop(self._proc, signal.SIGINT)  # "fast" shutdown

    def cleanup(self) -> None:
        """Stop and delete the data directory. The data is discarded, so an "immediate" shutdown (SIGQUIT):
        no shutdown checkpoint writing out what is about to be deleted."""
        import signal

        if self._proc is not None:
            stop(self._proc, signal.SIGQUIT)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
