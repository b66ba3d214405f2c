"""Two residency cells for the benchmark's C1 and C2 (docs/cells.md): the CN site's cell and the global cell.

The topology is ``deploy/local/cells.yaml`` without its ``ap`` cell, and the registry is
``deploy/local/registry.yaml`` without what only that cell hosts or serves (region ap-southeast, the sites
sg-jurong, th-rayong and vn-hanoi and their devices). Both are derived at the start of a run and written into
its directory, so they cannot drift from the demo's files. Why derived: a topology must host every region of
its registry and serve every site, and the SG, TH and VN sites may not be served by the global cell (DE): the
policy does not let their raw payload be processed there (``data.residency.raw_processing``), so the
ingest would refuse to start. The CN site's candidate regions (cn-north, its home, and us-east, the
analytics region) are the same in both registries; the benchmark checks that the rows stored over two cells
are exactly the rows the one-cell router gives.

``devstack.cells.CellsStack`` runs both cells on the benchmark's own PostgreSQL server (the settings G1 runs
with), each with its own Mosquitto (dynamic-security credentials generated for the cell, the cn -> global
bridge), ingest process (``INGEST_TOPOLOGY_FILE`` + ``INGEST_CELL``) and databases. The CN site's messages
are published to the cn broker as the site's gateway; the cn ingest stores their rows for cn-north and
commits the us-east rows to its outbox as parts, which its link sender ships over the bridge; the global
ingest checks them and stores them in us-east, and receipts them.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from psycopg import sql

from bench.ingest.load import LoadMeter
from bench.ingest.publish import Login
from bench.ingest.stack import BenchError
from bench.ingest.workload import Message, make_router
from devstack.cells import DEFAULT_TOPOLOGY, Cell, CellsStack
from devstack.errors import ComponentError
from devstack.postgres import PostgresServer
from devstack.process import tail
from ingest.cells.envelope import part_body, xfer_topic
from ingest.cells.receive import CellContext
from ingest.cells.topology import check_against_registry, load_topology
from ingest.registry import load_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
SENDER = "cn"  # the CN site's cell
RECEIVER = "global"  # hosts the analytics region us-east
SITE = "cn-shenzhen"  # whose machine data go to us-east over the link
HOME_REGION = "cn-north"
REMOTE_REGION = "us-east"


@dataclass(frozen=True)
class TwoCellFiles:
    topology: Path
    registry: Path
    left_out: dict[str, list[str]]  # what of the demo's files is not in these: cells, regions, sites, devices

    def describe(self) -> str:
        return "; ".join(f"{k} {', '.join(v)}" for k, v in self.left_out.items() if v)


def derive_two_cells(
    out_dir: Path,
    *,
    cells: tuple[str, ...] = (SENDER, RECEIVER),
    topology_file: Path = DEFAULT_TOPOLOGY,
    registry_file: Path = REGISTRY_FILE,
) -> TwoCellFiles:
    """The demo topology restricted to ``cells`` and the demo registry restricted to the regions they host and
    the sites they serve (with those sites' devices), written into ``out_dir``; checked as the ingest checks
    them (apart from the policy check, which the ingest makes at start)."""
    topo = yaml.safe_load(topology_file.read_text())
    missing = [c for c in cells if c not in topo.get("cells", {})]
    if missing:
        raise BenchError(f"{topology_file}: no cell(s) {missing} (cells: {sorted(topo.get('cells', {}))})")
    left_cells = sorted(set(topo["cells"]) - set(cells))
    topo["cells"] = {name: topo["cells"][name] for name in cells}
    hosted = {r for c in topo["cells"].values() for r in c["regions"]}
    served = {s for c in topo["cells"].values() for s in c.get("sites", [])}
    reg = yaml.safe_load(registry_file.read_text())
    if reg.get("analytics_region") not in hosted:
        raise BenchError(
            f"{registry_file}: the analytics region {reg.get('analytics_region')!r} is not hosted by "
            f"the cells {list(cells)} of {topology_file}"
        )
    left = {
        "cells": left_cells,
        "regions": sorted(set(reg["regions"]) - hosted),
        "sites": sorted(set(reg["sites"]) - served),
        "devices": sorted(d for d, dev in reg["devices"].items() if dev["site"] not in served),
    }
    reg["regions"] = {r: v for r, v in reg["regions"].items() if r in hosted}
    reg["sites"] = {s: v for s, v in reg["sites"].items() if s in served}
    reg["devices"] = {d: v for d, v in reg["devices"].items() if v["site"] in served}
    out_dir.mkdir(parents=True, exist_ok=True)
    files = TwoCellFiles(out_dir / "two-cells.yaml", out_dir / "two-cells-registry.yaml", left)
    header = f"# derived by bench.ingest.cells from {{}} (left out: {files.describe()})\n"
    files.topology.write_text(header.format(topology_file) + yaml.safe_dump(topo, sort_keys=False))
    files.registry.write_text(header.format(registry_file) + yaml.safe_dump(reg, sort_keys=False))
    check_against_registry(load_topology(files.topology), load_registry(files.registry), files.topology)
    return files


@dataclass(frozen=True)
class LinkStage:
    """CPU per message of the home route and of the link's two ends, in-process (microseconds)."""

    messages: int
    route_us: float  # the sending cell's Router.route of one 100-reading message (every region's rows)
    part_us: float  # part_body: what the outbox writer does per message for the remote region
    receive_us: float  # the receiving cell's Router.receive_part: decode, check, its own decisions, rows
    rows_per_part: float
    bytes_per_part: float
    bytes_per_message: float

    def line(self) -> str:
        return (
            f"in-process, per message of {self.messages}: home Router.route {self.route_us / 1000:.2f} ms; part "
            f"for {REMOTE_REGION} ({self.rows_per_part:.0f} rows, {self.bytes_per_part / 1024:.1f} KiB against "
            f"{self.bytes_per_message / 1024:.1f} KiB of payload): part_body {self.part_us / 1000:.2f} "
            f"ms, receiving Router.receive_part {self.receive_us / 1000:.2f} ms"
        )


def link_stage(files: TwoCellFiles, messages: list[Message], meter: LoadMeter) -> LinkStage:
    """The link's CPU per message measured like ``baselines.route_stage``: the routers the two cells' ingests
    build (the derived registry and topology, the embedded policy behind the decision cache), one thread."""
    registry, topology = load_registry(files.registry), load_topology(files.topology)

    home = make_router(registry, CellContext(SENDER, topology))
    receiver = make_router(registry, CellContext(RECEIVER, topology))
    for m in messages[:8]:  # policy caches warm, as in the service after its first messages
        rows = home.route(m.topic, m.payload).rows[REMOTE_REGION]
        receiver.receive_part(
            xfer_topic(RECEIVER, SENDER, m.device_id),
            part_body(rows, from_cell=SENDER, to_cell=RECEIVER, region=REMOTE_REGION)[1],
        )
    meter.start("link_stage")
    t0 = time.perf_counter()
    routed = [home.route(m.topic, m.payload) for m in messages]
    t1 = time.perf_counter()
    bodies = [
        part_body(r.rows[REMOTE_REGION], from_cell=SENDER, to_cell=RECEIVER, region=REMOTE_REGION)[1] for r in routed
    ]
    t2 = time.perf_counter()
    received = [
        receiver.receive_part(xfer_topic(RECEIVER, SENDER, m.device_id), body)
        for m, body in zip(messages, bodies, strict=True)
    ]
    t3 = time.perf_counter()
    meter.stop("link_stage")
    refused = [r.rejections[0].detail for r in received if r.rejections]
    if refused:
        raise BenchError(f"link stage: the receiving router refused {len(refused)} parts: {refused[0]}")
    n = len(messages)
    return LinkStage(
        n,
        (t1 - t0) / n * 1e6,
        (t2 - t1) / n * 1e6,
        (t3 - t2) / n * 1e6,
        sum(len(r.rows[REMOTE_REGION]) for r in routed) / n,
        sum(map(len, bodies)) / n,
        sum(len(m.payload) for m in messages) / n,
    )


@dataclass
class CellIngest:
    """A cell's ingest as ``bench.ingest.stack.wait_stored`` polls it (its /api/v1/stats)."""

    stack: CellsStack
    cell: Cell

    @property
    def name(self) -> str:
        return f"cell {self.cell.name}"

    @property
    def url(self) -> str:
        return self.cell.api_url

    @property
    def log_file(self) -> Path:
        return self.stack.dir / f"ingest-{self.cell.name}.log"

    def alive(self) -> bool:
        return self.cell.ingest is not None and self.cell.ingest.poll() is None

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            f"{self.url}/api/v1/stats", headers=self.stack.auth_headers, timeout=5
        ).json()
        return answer

    def links(self) -> dict[str, dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/links", headers=self.stack.auth_headers, timeout=5).json()
        return {link["peer"]: link for link in body["links"]}


class TwoCells:
    """The two cells of one measurement, started on the benchmark's PostgreSQL server; ``close()`` stops them
    and drops their databases (the next measurement starts from empty ones)."""

    def __init__(self, pg: PostgresServer, base_dir: Path, files: TwoCellFiles, env: dict[str, str]) -> None:
        base_dir.mkdir(parents=True, exist_ok=True)
        base_dir.chmod(0o755)
        self.stack = CellsStack(
            base_dir=base_dir, registry_file=files.registry, topology_file=files.topology, pg=pg, ingest_env=env
        )
        self.pg = pg
        self.sender = CellIngest(self.stack, self.stack.cells[SENDER])
        self.receiver = CellIngest(self.stack, self.stack.cells[RECEIVER])

    @property
    def port(self) -> int:
        """The sending cell's broker (where the CN site's gateway connects)."""
        return self.stack.cells[SENDER].mqtt.port

    def start(self, say: Any, timeout: float = 90.0) -> None:
        self._drop_databases(self._database_names())  # left by an earlier attempt that could not close
        try:
            self.stack.start(sites=[], say=say)
        except ComponentError as exc:
            raise BenchError(str(exc)) from None
        deadline = time.monotonic() + timeout
        for ingest in (self.sender, self.receiver):
            while not (self._ready(ingest)):
                if not ingest.alive():
                    raise BenchError(f"ingest of {ingest.name} exited:\n{tail(ingest.log_file)}")
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"ingest of {ingest.name} not connected to its broker after {timeout:.0f}s:\n"
                        f"{tail(ingest.log_file)}"
                    )
                time.sleep(0.1)
        while self.sender.links().get(RECEIVER, {}).get("up") is not True:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the bridge {SENDER} -> {RECEIVER} is not up after {timeout:.0f}s: "
                    f"{self.sender.links()}\n{tail(self.stack.cells[SENDER].mqtt.log_file)}"
                )
            time.sleep(0.1)
        time.sleep(0.3)  # let the SUBACKs arrive before anything is published (as IngestProcess.wait_ready)

    @staticmethod
    def _ready(ingest: CellIngest) -> bool:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return bool(ingest.stats().get("broker_connected"))
        return False

    def login(self, site: str = SITE) -> Login:
        """The site's gateway identity on its cell's broker."""
        broker = self.stack.agent_config(site)["broker"]
        assert isinstance(broker, dict)
        return Login(str(broker["username"]), Path(str(broker["password_file"])))

    def region_dsns(self) -> dict[str, str]:
        return {region: dsn for cell in self.stack.cells.values() for region, dsn in cell.region_dsns.items()}

    def count_rows(self, regions: list[str], min_seq: int = 0) -> dict[str, int]:
        dsns = self.region_dsns()
        out = {}
        for region in regions:
            with psycopg.connect(dsns[region]) as conn:
                row = conn.execute("SELECT count(*) FROM readings WHERE seq >= %s", (min_seq,)).fetchone()
                out[region] = int(row[0]) if row else 0
        return out

    def outbox_parts(self) -> int:
        with psycopg.connect(self.stack.cells[SENDER].control_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    def _database_names(self) -> list[str]:
        """The databases CellsStack creates for these cells (its naming: ``<cell>_control``, ``<cell>_<region>``)."""
        names = []
        for name, cell in self.stack.topology.cells.items():
            names.append(f"{name}_control")
            names += [f"{name}_{region.replace('-', '_')}" for region in cell.regions]
        return names

    def _drop_databases(self, names: list[str]) -> None:
        with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        for cell in self.stack.cells.values():  # both ingests wind down at once (cleanup waits for each in turn)
            if cell.ingest is not None and cell.ingest.poll() is None:
                cell.ingest.send_signal(signal.SIGTERM)
        self.stack.cleanup()
        self._drop_databases(self._database_names())
