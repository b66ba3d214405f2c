"""The local platform: PostgreSQL (one database per region + control), Mosquitto, the ingest service
and one simulated edge agent per site, all on loopback, all stopped together."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.agents import agent_config, write_agent_config
from devstack.errors import ComponentError
from devstack.mosquitto import MosquittoServer
from devstack.ports import free_port, wait_for_port
from devstack.postgres import PostgresServer
from devstack.process import spawn, stop, tail
from ingest.auth import tokens
from ingest.registry import Registry, load_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "deploy" / "local" / "registry.yaml"


def region_db(region: str) -> str:
    return "region_" + region.replace("-", "_")


@dataclass
class StackOptions:
    registry_file: Path = DEFAULT_REGISTRY
    api_port: int | None = None
    mqtt_port: int | None = None
    pg_port: int | None = None
    sites: list[str] | None = None
    interval_ms: int = 200
    batches: int | None = None  # per device; None = run until stopped
    ingest_env: dict[str, str] = field(default_factory=dict)
    timescaledb: bool = False  # region stores on TimescaleDB (installed for this PostgreSQL), sized for them


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.registry: Registry = load_registry(options.registry_file)
        unknown = sorted(set(options.sites or []) - set(self.registry.sites))
        if unknown:
            raise ComponentError("devstack", f"unknown site(s) {unknown}; known: {sorted(self.registry.sites)}")
        self.sites = options.sites or sorted(self.registry.sites)
        self.dir = Path(tempfile.mkdtemp(prefix="telemetry-stack-"))
        os.chmod(self.dir, 0o755)
        self.pg = PostgresServer(
            port=options.pg_port,
            base_dir=self.dir,
            timescaledb=options.timescaledb,
            timescaledb_databases=len(self.registry.regions),
        )
        self.mqtt = MosquittoServer(port=options.mqtt_port, base_dir=self.dir)
        self.api_port = options.api_port or (8000 if _port_free(8000) else free_port())
        self.control_dsn = ""
        self.region_dsns: dict[str, str] = {}
        self.ingest: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        # The demo admin (every role, every region): the ingest creates user "admin" with this token's hash on
        # its first start (INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE), as docker-compose does with a Docker secret.
        self.admin_token = tokens.generate().text
        self.admin_token_file = self.dir / "admin-token"
        self.admin_token_file.write_text(self.admin_token + "\n")
        os.chmod(self.admin_token_file, 0o600)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def dashboard_link(self) -> str:
        """The dashboard, signed in as the demo admin (the page moves the token to sessionStorage)."""
        return f"{self.api_url}/dashboard#token={self.admin_token}"

    def start(self, progress: bool = True) -> None:
        say = print if progress else (lambda *a, **k: None)
        say(f"[1/4] PostgreSQL on 127.0.0.1:{self.pg.port} ...", flush=True)
        self.pg.start()
        self.control_dsn = control = self.pg.create_database("control")
        self.region_dsns = dsns = {r: self.pg.create_database(region_db(r)) for r in self.registry.regions}
        say(f"[2/4] Mosquitto on 127.0.0.1:{self.mqtt.port} ...", flush=True)
        self.mqtt.start()
        say(f"[3/4] ingest + API on {self.api_url} ...", flush=True)
        env = {
            **os.environ,
            "INGEST_MQTT_HOST": "127.0.0.1",
            "INGEST_MQTT_PORT": str(self.mqtt.port),
            "INGEST_REGISTRY_FILE": str(self.options.registry_file),
            "INGEST_REGION_DSNS": json.dumps(dsns),
            **({"INGEST_TIMESCALEDB": "on"} if self.options.timescaledb else {}),
            "INGEST_CONTROL_DSN": control,
            "INGEST_API_HOST": "127.0.0.1",
            "INGEST_API_PORT": str(self.api_port),
            "INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE": str(self.admin_token_file),
            "INGEST_WORKERS": "1",  # one process (the default is one per CPU); ingest_env may ask for more
            **self.options.ingest_env,
        }
        self.ingest = spawn(
            [sys.executable, "-m", "ingest", "serve"],
            user=None,
            log_file=self.dir / "ingest.log",
            env=env,
            cwd=REPO_ROOT,
        )
        self._wait_api()
        say(f"[4/4] edge agents for {', '.join(self.sites)} ...", flush=True)
        for site_id in self.sites:
            self.start_agent(site_id)

    def agent_config_file(self, site_id: str) -> Path:
        return self.dir / f"agent-{site_id}.yaml"

    def start_agent(self, site_id: str) -> None:
        state = self.dir / "agents" / site_id
        state.mkdir(parents=True, exist_ok=True)
        cfg = agent_config(
            self.registry, site_id, mqtt_port=self.mqtt.port, state_dir=state, interval_ms=self.options.interval_ms
        )
        path = write_agent_config(self.agent_config_file(site_id), cfg)
        argv = [sys.executable, "-m", "edge_agent", "run", "--config", str(path)]
        if self.options.batches is not None:
            argv += ["--batches", str(self.options.batches)]
        self.agents[site_id] = spawn(argv, user=None, log_file=self.dir / f"agent-{site_id}.log", cwd=REPO_ROOT)

    def _wait_api(self, timeout: float = 60.0) -> None:
        assert self.ingest is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ingest.poll() is not None:
                log = tail(self.dir / "ingest.log")
                raise ComponentError("ingest", f"exited with {self.ingest.returncode}:\n{log}")
            if wait_for_port("127.0.0.1", self.api_port, 0.5):
                try:
                    if httpx.get(f"{self.api_url}/api/v1/health", timeout=2).status_code in (200, 503):
                        return
                except httpx.HTTPError:
                    pass
        log = tail(self.dir / "ingest.log")
        raise ComponentError("ingest", f"API not up on {self.api_url} after {timeout}s:\n{log}")

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.api_url}/api/v1/stats", headers=self.auth_headers, timeout=5).json()
        return stats  # the API's StatsPublic, as JSON

    def stop(self) -> None:
        for proc in self.agents.values():
            stop(proc)
        if self.ingest is not None:
            stop(self.ingest)
        self.mqtt.stop()
        self.pg.stop()

    def cleanup(self, *, keep: bool = False) -> None:
        """Stop everything; delete the data and logs directory unless ``keep``."""
        self.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
