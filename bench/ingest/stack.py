"""The benchmark's servers: one PostgreSQL (control + region databases), Mosquitto, ingest replicas.

PostgreSQL keeps devstack's settings (``synchronous_commit=on``, fsync on: durable commits, as the
ingest's "ack after commit" promises). Each phase gets empty tables (TRUNCATE) and a CHECKPOINT, and a
fresh Mosquitto (no session, queue or shared-subscription member left over from an earlier phase).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg

from devstack.mosquitto import MosquittoServer
from devstack.ports import free_port, wait_for_port
from devstack.postgres import PostgresServer
from devstack.process import spawn, stop, tail
from ingest.auth import tokens
from ingest.store.migrate import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """A phase could not run; the message says which component and why."""


def region_db(region: str) -> str:
    return "region_" + region.replace("-", "_")


@dataclass
class Databases:
    control: str
    regions: dict[str, str]

    def all(self) -> list[str]:
        return [self.control, *self.regions.values()]


class Stack:
    def __init__(self, regions: list[str], keep: bool = False, pg_settings: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.region_names = regions
        # pg_stat_statements: what each timed window's statements cost (bench.ingest.pgwatch); a --pg-setting of
        # shared_preload_libraries replaces it.
        self.pg = PostgresServer(
            base_dir=self.dir, settings={"shared_preload_libraries": "pg_stat_statements", **(pg_settings or {})}
        )
        self.mqtt: MosquittoServer | None = None
        self.db: Databases | None = None
        self.ingests: list[IngestProcess] = []
        self._minimal_dsn: str | None = None

    # --- PostgreSQL ---
    def start_postgres(self) -> None:
        self.pg.start()
        if "pg_stat_statements" in self.pg.settings.get("shared_preload_libraries", ""):
            with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        control = self.pg.create_database("control")
        migrate(control, "control", store="control")
        regions = {}
        for region in self.region_names:
            regions[region] = self.pg.create_database(region_db(region))
            migrate(regions[region], "region", store=region)
        self.db = Databases(control, regions)

    def minimal_dsn(self) -> str:
        """The database of the minimal pipeline baseline (bench.ingest.minimal creates its table)."""
        if self._minimal_dsn is None:
            self._minimal_dsn = self.pg.create_database("minimal")
        return self._minimal_dsn

    def store_maintenance(self) -> str | None:
        """Run the ingest's store maintenance once (daily partitions created ahead, as the service does when
        it starts), so the baselines load into the same partitions as the ingest writes to."""
        assert self.db is not None
        try:
            from ingest.store.maintenance import StoreMaintenance
        except ImportError:
            return None
        try:
            StoreMaintenance(self.db.regions).run_once()
        except Exception as exc:
            return f"store maintenance failed ({type(exc).__name__}: {exc}); baselines may use other partitions"
        return "store maintenance ran once (partitions ahead), as the ingest does when it starts"

    def reset_databases(self) -> None:
        """Empty every table but schema_migrations (TRUNCATE: new, empty files and indexes), then CHECKPOINT."""
        assert self.db is not None
        for dsn in self.db.all():
            with psycopg.connect(dsn, autocommit=True) as conn:
                tables = [
                    r[0]
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename NOT IN ('schema_migrations', 'audit_log')"  # audit_log refuses TRUNCATE
                    ).fetchall()
                ]
                if tables:
                    conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
        with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def count_rows(self, min_seq: int = 0, max_seq: int = 2**62) -> dict[str, int]:
        assert self.db is not None
        out = {}
        for region, dsn in self.db.regions.items():
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM readings WHERE seq >= %s AND seq < %s", (min_seq, max_seq)
                ).fetchone()
                out[region] = int(row[0]) if row else 0
        return out

    # --- Mosquitto ---
    def fresh_broker(self) -> MosquittoServer:
        """A new Mosquitto with broker/local.conf (the old one, if any, is stopped and removed)."""
        if self.mqtt is not None:
            self.mqtt.cleanup()
        self.mqtt = MosquittoServer(base_dir=self.dir)
        self.mqtt.start()
        return self.mqtt

    @property
    def mqtt_port(self) -> int:
        assert self.mqtt is not None
        return self.mqtt.port

    # --- ingest replicas ---
    def start_ingest(self, name: str, env: dict[str, str] | None = None) -> IngestProcess:
        assert self.db is not None and self.mqtt is not None
        proc = IngestProcess(name, self, env or {})
        proc.start()
        self.ingests.append(proc)
        return proc

    def stop_ingests(self) -> None:
        for proc in self.ingests:
            proc.stop()
        self.ingests.clear()

    def cleanup(self) -> None:
        self.stop_ingests()
        if self.mqtt is not None:
            self.mqtt.cleanup() if not self.keep else self.mqtt.stop()
        if self.keep:
            self.pg.stop()
            print(f"bench: kept {self.dir}", file=sys.stderr)
        else:
            self.pg.cleanup()
            shutil.rmtree(self.dir, ignore_errors=True)


_ADMIN_TOKEN = tokens.generate()  # the ingest creates user "admin" with it in each fresh control store


def _admin_token_file(directory: Path) -> Path:
    path = directory / "admin-token"
    path.write_text(_ADMIN_TOKEN.text + "\n")
    return path


@dataclass
class IngestProcess:
    """``python -m ingest serve`` as a child process, with its own API port and MQTT client id."""

    name: str
    stack: Stack
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_file(self) -> Path:
        return self.stack.dir / f"ingest-{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        db = self.stack.db
        assert db is not None
        self.api_port = free_port()
        env = {
            **os.environ,
            "INGEST_MQTT_HOST": "127.0.0.1",
            "INGEST_MQTT_PORT": str(self.stack.mqtt_port),
            "INGEST_MQTT_CLIENT_ID": f"bench-{self.name}-{os.getpid()}",
            "INGEST_REGISTRY_FILE": str(REPO_ROOT / "deploy" / "local" / "registry.yaml"),
            "INGEST_REGION_DSNS": json.dumps(db.regions),
            "INGEST_CONTROL_DSN": db.control,
            "INGEST_API_HOST": "127.0.0.1",
            "INGEST_API_PORT": str(self.api_port),
            "INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE": str(_admin_token_file(self.stack.dir)),  # /stats needs a token
            "INGEST_WORKERS": "1",  # a replica is one process unless a phase asks for --workers (G5')
            **self.env,
        }
        self.proc = spawn(
            [sys.executable, "-m", "ingest", "serve"], user=None, log_file=self.log_file, env=env, cwd=REPO_ROOT
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the API answers and the consumer is connected to the broker."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"ingest {self.name} exited with {self.proc.returncode}:\n{tail(self.log_file)}")
            if wait_for_port("127.0.0.1", self.api_port, 0.3):
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if self.stats().get("broker_connected"):
                        time.sleep(0.3)  # let the SUBACK arrive before anything is published
                        return
            time.sleep(0.1)
        raise BenchError(f"ingest {self.name} not ready on {self.url} after {timeout}s:\n{tail(self.log_file)}")

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            f"{self.url}/api/v1/stats", headers={"Authorization": f"Bearer {_ADMIN_TOKEN.text}"}, timeout=5
        ).json()
        return answer

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def stored(stats: dict[str, Any]) -> int:
    """Messages the ingest has finished (stored or rejected: both are committed and acknowledged)."""
    m = stats.get("messages") or {}
    return int(m.get("stored", 0)) + int(m.get("rejected", 0))


def last_commit(stats: dict[str, Any]) -> float | None:
    value = stats.get("last_commit_at")
    return datetime.fromisoformat(value).timestamp() if value else None


class Polled(Protocol):
    """What ``wait_stored`` asks of an ingest process (``IngestProcess``, or a residency cell's ingest)."""

    @property
    def name(self) -> str: ...

    @property
    def log_file(self) -> Path: ...

    def alive(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


def wait_stored(
    procs: Sequence[Polled],
    target: int,
    timeout: float,
    on_count: Any = None,
    base: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Poll /stats of every replica until together they have finished ``target`` messages (beyond ``base``)
    with nothing in flight; return the last snapshots."""
    base = base or [0] * len(procs)
    deadline = time.monotonic() + timeout
    snaps: list[dict[str, Any]] = []
    while True:
        snaps = []
        for p in procs:
            if not p.alive():
                raise BenchError(f"ingest {p.name} died:\n{tail(p.log_file)}")
            snaps.append(p.stats())
        done = sum(stored(s) - b for s, b in zip(snaps, base, strict=True))
        if on_count is not None:
            on_count(done)
        if done >= target and all(int(s.get("inflight", 0)) == 0 for s in snaps):
            return snaps
        if time.monotonic() > deadline:
            raise BenchError(
                f"timed out after {timeout:.0f}s: {done}/{target} messages stored; last stats: "
                + "; ".join(json.dumps({k: s.get(k) for k in ("messages", "inflight", "last_error")}) for s in snaps)
                + "\n"
                + "\n".join(tail(p.log_file) for p in procs)
            )
        time.sleep(0.25)  # the API answers in the timed window: poll it gently
