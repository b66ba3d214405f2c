"""Residency cells side by side on one machine (docs/cells.md): for the demo (``./scripts/run --cells``) and
the tests.

One PostgreSQL server holds every cell's databases (``<cell>_control`` and one per hosted region: each cell
has its own); each cell has its own Mosquitto (dynamic-security credentials generated for that cell, and its
bridges to the peers it sends parts to), its own ingest process (``INGEST_TOPOLOGY_FILE`` + ``INGEST_CELL``)
and the simulated agents of its sites, each logging in as its gateway. Everything on 127.0.0.1, free ports.

A bridge can be pointed at another address than the peer's broker (``relay``), so that a test can put a
recording TCP relay, or a link it cuts, between two cells.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from broker.cells import BRIDGES_FILE, generate_cells, peer_account
from broker.credentials import DYNSEC_FILE, IDENTITIES_DIR
from broker.identities import load_identities
from devstack.agents import agent_config, write_agent_config
from devstack.errors import ComponentError
from devstack.mosquitto import BrokerAuth, MosquittoServer
from devstack.ports import free_port, wait_for_port
from devstack.postgres import PostgresServer
from devstack.process import spawn, stop, tail
from ingest.auth import tokens
from ingest.cells.topology import Topology, load_topology
from ingest.registry import Registry, load_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "deploy" / "local" / "registry.yaml"
DEFAULT_TOPOLOGY = REPO_ROOT / "deploy" / "local" / "cells.yaml"
DEFAULT_IDENTITIES = REPO_ROOT / "deploy" / "local" / "broker-identities.yaml"
INGEST_ACCOUNT = "ingest-1"


def _db(prefix: str, name: str) -> str:
    return f"{prefix}_{name.replace('-', '_')}"


@dataclass
class Cell:
    """One running cell: its broker, its ingest and its databases."""

    name: str
    mqtt: MosquittoServer
    api_port: int
    control_dsn: str = ""
    region_dsns: dict[str, str] = field(default_factory=dict)
    ingest: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


class CellsStack:
    """Every cell of a topology, started and stopped together."""

    def __init__(
        self,
        *,
        base_dir: Path,
        registry_file: Path = DEFAULT_REGISTRY,
        topology_file: Path = DEFAULT_TOPOLOGY,
        identities_file: Path = DEFAULT_IDENTITIES,
        pg: PostgresServer | None = None,
        relay: Callable[[str, str, int], int] | None = None,
        ingest_env: dict[str, str] | None = None,
        cell_env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``relay(from_cell, to_cell, peer_port) -> port``: where the bridge from ``from_cell`` to ``to_cell``
        connects instead of the peer's broker port (e.g. a test's recording relay)."""
        self.dir = base_dir
        self.registry_file = registry_file
        self.registry: Registry = load_registry(registry_file)
        self.template = load_topology(topology_file)
        self.identities = load_identities(identities_file)
        self.pg = pg or PostgresServer(base_dir=base_dir, settings={"fsync": "off"})
        self._own_pg = pg is None
        self.relay = relay
        self.ingest_env = dict(ingest_env or {})
        self.cell_env = dict(cell_env or {})
        self.cells = {name: Cell(name, MosquittoServer(base_dir=base_dir), free_port()) for name in self.template.cells}
        self.topology_file = base_dir / "cells.yaml"
        self.topology: Topology = self._local_topology()
        self.credentials = base_dir / "credentials"
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.admin_token = tokens.generate().text
        self.admin_token_file = base_dir / "admin-token"
        self.admin_token_file.write_text(self.admin_token + "\n")
        os.chmod(self.admin_token_file, 0o600)

    def _local_topology(self) -> Topology:
        """The template with this machine's addresses: each broker on its free port, no TLS, APIs on theirs."""
        raw = self.template.model_dump()
        for name, cell in raw["cells"].items():
            cell["broker"] = {"host": "127.0.0.1", "port": self.cells[name].mqtt.port, "tls": False}
            cell["api"] = self.cells[name].api_url
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topology_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        return load_topology(self.topology_file)

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def cell_of_site(self, site: str) -> Cell:
        name = self.topology.cell_of_site(site)
        assert name is not None
        return self.cells[name]

    # --- start ---
    def start(
        self,
        *,
        sites: list[str] | None = None,
        interval_ms: int = 200,
        batches: int | None = None,
        say: Callable[[str], None] = lambda _s: None,
    ) -> None:
        if self._own_pg:
            say(f"PostgreSQL on 127.0.0.1:{self.pg.port} ...")
            self.pg.start()
        for cell in self.cells.values():
            cell.control_dsn = self.pg.create_database(_db(cell.name, "control"))
            cell.region_dsns = {
                r: self.pg.create_database(_db(cell.name, r)) for r in self.topology.cells[cell.name].regions
            }
        addresses = {
            name: {
                peer: (
                    "127.0.0.1",
                    self.relay(name, peer, self.cells[peer].mqtt.port) if self.relay else self.cells[peer].mqtt.port,
                )
                for peer in self.topology.peers(name, self.registry)[0]
            }
            for name in self.cells
        }
        generate_cells(
            self.registry, self.identities, self.topology, self.credentials, source="devstack", addresses=addresses
        )
        for cell in self.cells.values():
            # receivers first: a bridge that finds its peer up connects at once
            say(
                f"cell {cell.name}: Mosquitto on 127.0.0.1:{cell.mqtt.port} (bridges: "
                f"{', '.join(sorted(addresses[cell.name])) or 'none'}) ..."
            )
            cell.mqtt.auth = BrokerAuth(self.credentials / cell.name / DYNSEC_FILE)
            cell.mqtt.extra = (self.credentials / cell.name / BRIDGES_FILE).read_text()
            cell.mqtt.start()
        for cell in self.cells.values():
            say(f"cell {cell.name}: ingest + API on {cell.api_url} (regions {', '.join(cell.region_dsns)}) ...")
            self.start_ingest(cell)
        for cell in self.cells.values():
            self.wait_api(cell)
        for site in sites if sites is not None else sorted(self.registry.sites):
            self.start_agent(site, interval_ms=interval_ms, batches=batches)

    def secret_file(self, cell: str, identity: str) -> Path:
        return self.credentials / cell / IDENTITIES_DIR / identity / "password"

    def ingest_env_of(self, cell: Cell) -> dict[str, str]:
        return {
            **os.environ,
            "INGEST_MQTT_HOST": "127.0.0.1",
            "INGEST_MQTT_PORT": str(cell.mqtt.port),
            "INGEST_MQTT_CLIENT_ID": INGEST_ACCOUNT,
            "INGEST_MQTT_USERNAME": INGEST_ACCOUNT,
            "INGEST_MQTT_PASSWORD": self.secret_file(cell.name, INGEST_ACCOUNT).read_text().strip(),
            "INGEST_REGISTRY_FILE": str(self.registry_file),
            "INGEST_TOPOLOGY_FILE": str(self.topology_file),
            "INGEST_CELL": cell.name,
            "INGEST_REGION_DSNS": json.dumps(cell.region_dsns),
            "INGEST_CONTROL_DSN": cell.control_dsn,
            "INGEST_API_HOST": "127.0.0.1",
            "INGEST_API_PORT": str(cell.api_port),
            "INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE": str(self.admin_token_file),
            "INGEST_PEER_TOKEN_FILE": str(self.admin_token_file),
            "INGEST_WORKERS": "1",  # one process per cell (the default is one per CPU); ingest_env may ask for more
            **self.ingest_env,
            **self.cell_env.get(cell.name, {}),
        }

    def start_ingest(self, cell: Cell) -> None:
        cell.ingest = spawn(
            [sys.executable, "-m", "ingest", "serve"],
            user=None,
            log_file=self.dir / f"ingest-{cell.name}.log",
            env=self.ingest_env_of(cell),
            cwd=REPO_ROOT,
        )

    def wait_api(self, cell: Cell, timeout: float = 90.0) -> None:
        assert cell.ingest is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cell.ingest.poll() is not None:
                log = tail(self.dir / f"ingest-{cell.name}.log")
                raise ComponentError(f"ingest of cell {cell.name}", f"exited with {cell.ingest.returncode}:\n{log}")
            if wait_for_port("127.0.0.1", cell.api_port, 0.5):
                try:
                    if httpx.get(f"{cell.api_url}/api/v1/health", timeout=2).status_code in (200, 503):
                        return
                except httpx.HTTPError:
                    pass
        raise ComponentError(
            f"ingest of cell {cell.name}",
            f"API not up on {cell.api_url} after {timeout}s:\n{tail(self.dir / f'ingest-{cell.name}.log')}",
        )

    def agent_config(
        self,
        site: str,
        *,
        interval_ms: int = 200,
        max_readings: int = 25,
        max_latency_ms: int = 1000,
        cell: str | None = None,
    ) -> dict[str, object]:
        """A site's agent config: its cell's broker (or ``cell``'s, to test a wrong one), its gateway's login."""
        target = self.cells[cell] if cell else self.cell_of_site(site)
        state = self.dir / "agents" / site
        state.mkdir(parents=True, exist_ok=True)
        cfg = agent_config(
            self.registry,
            site,
            mqtt_port=target.mqtt.port,
            state_dir=state,
            interval_ms=interval_ms,
            max_readings=max_readings,
            max_latency_ms=max_latency_ms,
        )
        gateway = str(cfg["gateway_id"])
        home = self.cell_of_site(site).name
        cfg["broker"] = {**cfg["broker"], "username": gateway, "password_file": str(self.secret_file(home, gateway))}
        return cfg

    def start_agent(self, site: str, *, interval_ms: int = 200, batches: int | None = None) -> None:
        path = write_agent_config(self.dir / f"agent-{site}.yaml", self.agent_config(site, interval_ms=interval_ms))
        argv = [sys.executable, "-m", "edge_agent", "run", "--config", str(path)]
        if batches is not None:
            argv += ["--batches", str(batches)]
        self.agents[site] = spawn(argv, user=None, log_file=self.dir / f"agent-{site}.log", cwd=REPO_ROOT)

    def peer_secret(self, from_cell: str, to_cell: str) -> str:
        """The secret ``from_cell``'s bridge logs in to ``to_cell``'s broker with."""
        return self.secret_file(to_cell, peer_account(from_cell)).read_text().strip()

    # --- stop ---
    def stop(self) -> None:
        for proc in self.agents.values():
            stop(proc)
        for cell in self.cells.values():
            if cell.ingest is not None:
                stop(cell.ingest)
        for cell in self.cells.values():
            cell.mqtt.stop()
        if self._own_pg:
            self.pg.stop()

    def cleanup(self, *, keep: bool = False) -> None:
        """Stop everything; delete the data and logs unless ``keep``."""
        self.stop()
        if keep:
            return
        for cell in self.cells.values():
            cell.mqtt.cleanup()
        if self._own_pg:
            self.pg.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stats(self, cell: str) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(
            f"{self.cells[cell].api_url}/api/v1/stats", headers=self.auth_headers, timeout=5
        ).json()  # the API's StatsPublic, as JSON
        return stats

    def links(self, cell: str) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = httpx.get(
            f"{self.cells[cell].api_url}/api/v1/links", headers=self.auth_headers, timeout=5
        ).json()["links"]
        return links
