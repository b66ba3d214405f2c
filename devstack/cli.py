"""``devstack up``: run the whole platform locally until Ctrl-C (or for --duration seconds)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devstack import banner
from devstack.cells import DEFAULT_TOPOLOGY, CellsStack
from devstack.errors import ComponentError
from devstack.personas import create_demo_users
from devstack.sparkplug import TahuEdgeNode, merged_registry
from devstack.stack import DEFAULT_REGISTRY, LocalStack, StackOptions

SPARKPLUG_IDENTITY = "munich.tahu-01"  # its broker user name in a cell (broker.identities: <group>.<edge node>)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="start the residency cells (each: Mosquitto, ingest/API, databases) and "
        "simulated edge agents; --single: one broker and one ingest for every region",
    )
    up.add_argument(
        "--single",
        action="store_true",
        help="one broker and one ingest for every region, as before cells (the ports options apply)",
    )
    up.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY, help="cells topology (default: the demo's)")
    up.add_argument("--api-port", type=int, default=None, help="API port (default 8000 if free, else any)")
    up.add_argument("--mqtt-port", type=int, default=None, help="Mosquitto port (default: a free port)")
    up.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (default: a free port)")
    up.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="device registry file")
    up.add_argument("--sites", default=None, help="comma-separated site ids (default: every site)")
    up.add_argument("--interval-ms", type=int, default=200, help="sampling period of simulated machines")
    up.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    up.add_argument(
        "--timescaledb",
        action="store_true",
        help="region stores on TimescaleDB (it must be installed for the PostgreSQL used; PG_BIN)",
    )
    up.add_argument(
        "--sparkplug",
        action="store_true",
        help="also run a simulated third-party Sparkplug B edge node (Eclipse Tahu's JavaScript client, "
        "Node.js) at de-munich: group munich, edge node tahu-01, device press-01 (docs/sparkplug.md)",
    )
    up.add_argument(
        "--keep", action="store_true", help="keep the data and logs directory after stopping (its path is printed)"
    )
    return p


def _report_exited(agents: dict[str, subprocess.Popen[bytes]], data_dir: Path) -> None:
    for site, proc in agents.items():
        if proc.poll() is not None:
            print(f"agent {site} exited with {proc.returncode}; see {data_dir}/agent-{site}.log")


def _stop(cleanup: Callable[..., None], data_dir: Path, *, keep: bool, what: str) -> None:
    """Stop everything a run started; say where its data and logs are when they are kept."""
    print(f"stopping {what} ...", flush=True)
    cleanup(keep=keep)
    if keep:
        print(f"kept the data and logs in {data_dir} (delete it when done)", flush=True)
    print("stopped.", flush=True)


def _fmt_rates(prev: dict[str, int], cur: dict[str, int], dt: float) -> str:
    parts = []
    for region in sorted(cur):
        rate = (cur[region] - prev.get(region, 0)) / dt if dt > 0 else 0.0
        parts.append(f"{region} {cur[region]} (+{rate:.0f}/s)")
    return ", ".join(parts) or "no rows yet"


def _next_steps(stack: LocalStack, *, keep: bool) -> banner.NextSteps:
    users = create_demo_users(stack.api_url, stack.admin_token, list(stack.registry.regions))
    return banner.NextSteps(
        api_url=stack.api_url,
        admin_token=stack.admin_token,
        users=users,
        control_dsn=stack.control_dsn,
        region_dsns=stack.region_dsns,
        mqtt_host="127.0.0.1",
        mqtt_port=stack.mqtt.port,
        agent_config=stack.agent_config_file(stack.sites[0]) if stack.sites else None,
        data_dir=stack.dir,
        keep=keep,
    )


def _sparkplug_registry(args: argparse.Namespace) -> None:
    """--sparkplug: the registry with the edge node's entries (deploy/local/registry-sparkplug.yaml) added."""
    if args.sparkplug:
        merged = Path(tempfile.mkdtemp(prefix="telemetry-sparkplug-")) / "registry.yaml"
        args.registry = merged_registry(args.registry, merged)


def _start_edge_node(port: int, log: Path, secret: Path | None = None) -> TahuEdgeNode:
    username = password = None
    if secret is not None:
        username, password = SPARKPLUG_IDENTITY, secret.read_text().strip()
    node = TahuEdgeNode(
        f"mqtt://127.0.0.1:{port}",
        "munich",
        "tahu-01",
        ["press-01"],
        simulate_s=1.0,
        log=log,
        username=username,
        password=password,
    )
    node.wait_for(lambda e: e["event"] == "births", timeout=30)
    print(
        f"Sparkplug B edge node munich/tahu-01 (device press-01) publishing to 127.0.0.1:{port}; log {log}", flush=True
    )
    return node


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    _sparkplug_registry(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not args.single:
        for option in ("api_port", "mqtt_port", "pg_port"):
            if getattr(args, option) is not None:
                print(
                    f"devstack: --{option.replace('_', '-')} applies to --single (cells take free ports)",
                    file=sys.stderr,
                )
                return 2
        if args.timescaledb:
            print("devstack: --timescaledb applies to --single", file=sys.stderr)
            return 2
        return up_cells(args, stop)
    options = StackOptions(
        registry_file=args.registry,
        api_port=args.api_port,
        mqtt_port=args.mqtt_port,
        pg_port=args.pg_port,
        sites=args.sites.split(",") if args.sites else None,
        interval_ms=args.interval_ms,
        timescaledb=args.timescaledb,
    )
    try:
        stack = LocalStack(options)
    except ComponentError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    edge: TahuEdgeNode | None = None
    try:
        stack.start()
        print(banner.render(_next_steps(stack, keep=args.keep)), flush=True)
        if args.sparkplug:
            edge = _start_edge_node(stack.mqtt.port, stack.dir / "sparkplug-edge.log")
        started = time.monotonic()
        prev: dict[str, int] = {}
        last = time.monotonic()
        while not stop.wait(5.0):
            _report_exited(stack.agents, stack.dir)
            try:
                snap = stack.stats()
            except Exception as exc:  # the API may be restarting; keep going
                print(f"stats unavailable: {exc}")
                continue
            now = time.monotonic()
            rows = {k: int(v) for k, v in dict(snap.get("rows_by_region", {})).items()}
            msgs = snap.get("messages", {})
            print(
                f"rows: {_fmt_rates(prev, rows, now - last)} | messages {msgs} | "
                f"decisions {snap.get('decisions')} | rejections {snap.get('rejections')}",
                flush=True,
            )
            prev, last = rows, now
            if args.duration is not None and now - started >= args.duration:
                break
        return 0
    except ComponentError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    finally:
        if edge is not None:
            edge.stop()
        _stop(stack.cleanup, stack.dir, keep=args.keep, what="agents, ingest, Mosquitto, PostgreSQL")


def up_cells(args: argparse.Namespace, stop: threading.Event) -> int:
    """Every cell of the topology side by side (devstack.cells), agents of every site on their cell's broker;
    every 5 s, per cell: rows per region and its links (parts waiting, lag)."""
    base = Path(tempfile.mkdtemp(prefix="telemetry-cells-"))
    os.chmod(base, 0o755)
    try:
        stack = CellsStack(base_dir=base, registry_file=args.registry, topology_file=args.topology)
    except (ComponentError, ValueError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    sites = args.sites.split(",") if args.sites else None
    unknown = sorted(set(sites or []) - set(stack.registry.sites))
    if unknown:
        print(f"devstack: unknown site(s) {unknown}; known: {sorted(stack.registry.sites)}", file=sys.stderr)
        return 2
    edge: TahuEdgeNode | None = None
    try:
        stack.start(sites=sites, interval_ms=args.interval_ms, say=lambda line: print(line, flush=True))
        if args.sparkplug:
            home = stack.cell_of_site("de-munich")
            edge = _start_edge_node(
                home.mqtt.port, base / "sparkplug-edge.log", stack.secret_file(home.name, SPARKPLUG_IDENTITY)
            )
        steps = []
        for name, cell in stack.cells.items():
            spec = stack.topology.cells[name]
            users = create_demo_users(cell.api_url, stack.admin_token, list(spec.regions))
            steps.append(
                banner.CellSteps(
                    name=name,
                    country=spec.country,
                    sites=list(spec.sites),
                    api_url=cell.api_url,
                    users=users,
                    control_dsn=cell.control_dsn,
                    region_dsns=cell.region_dsns,
                    mqtt_port=cell.mqtt.port,
                    bridges=sorted(stack.topology.peers(name, stack.registry)[0]),
                )
            )
        print(banner.render_cells(steps, admin_token=stack.admin_token, data_dir=base, keep=args.keep), flush=True)
        started = time.monotonic()
        prev: dict[str, dict[str, int]] = {}
        last = time.monotonic()
        while not stop.wait(5.0):
            _report_exited(stack.agents, base)
            now = time.monotonic()
            for name in stack.cells:
                try:
                    snap = stack.stats(name)
                    links = stack.links(name)
                except Exception as exc:  # an API restarting: keep going
                    print(f"cell {name}: stats unavailable: {exc}")
                    continue
                hosted = set(stack.topology.cells[name].regions)
                rows = {
                    (k if k in hosted else f"{k} (sent as parts)"): int(v)
                    for k, v in dict(snap.get("rows_by_region", {})).items()
                }
                link_text = "; ".join(
                    f"link to {lk['peer']} {'up' if lk['up'] else 'DOWN' if lk['up'] is False else '?'}, "
                    f"{lk['outbox_parts']} parts waiting, lag {float(lk['lag_s']):.1f}s, {lk['receipted']} receipted"
                    for lk in links
                )
                print(
                    f"cell {name}: rows: {_fmt_rates(prev.get(name, {}), rows, now - last)}"
                    + (f" | {link_text}" if link_text else ""),
                    flush=True,
                )
                prev[name] = rows
            last = now
            if args.duration is not None and now - started >= args.duration:
                break
        return 0
    except ComponentError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    finally:
        if edge is not None:
            edge.stop()
        _stop(stack.cleanup, base, keep=args.keep, what="agents, ingests, brokers, PostgreSQL")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
