"""``devstack up``: run the whole platform locally until Ctrl-C (or for --duration seconds)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from devstack.errors import ComponentError
from devstack.stack import DEFAULT_REGISTRY, LocalStack, StackOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL, Mosquitto, the ingest/API and simulated edge agents")
    up.add_argument("--api-port", type=int, default=None, help="API port (default 8000 if free, else any)")
    up.add_argument("--mqtt-port", type=int, default=None, help="Mosquitto port (default: a free port)")
    up.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (default: a free port)")
    up.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY, help="device registry file")
    up.add_argument("--sites", default=None, help="comma-separated site ids (default: every site)")
    up.add_argument("--interval-ms", type=int, default=200, help="sampling period of simulated machines")
    up.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    up.add_argument("--timescaledb", action="store_true",
                    help="region stores on TimescaleDB (it must be installed for the PostgreSQL used; PG_BIN)")
    return p


def _fmt_rates(prev: dict[str, int], cur: dict[str, int], dt: float) -> str:
    parts = []
    for region in sorted(cur):
        rate = (cur[region] - prev.get(region, 0)) / dt if dt > 0 else 0.0
        parts.append(f"{region} {cur[region]} (+{rate:.0f}/s)")
    return ", ".join(parts) or "no rows yet"


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    options = StackOptions(
        registry_file=args.registry, api_port=args.api_port, mqtt_port=args.mqtt_port, pg_port=args.pg_port,
        sites=args.sites.split(",") if args.sites else None, interval_ms=args.interval_ms,
        timescaledb=args.timescaledb,
    )
    try:
        stack = LocalStack(options)
    except ComponentError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    try:
        stack.start()
        print(f"\nAPI        {stack.api_url}/api/v1/docs  (Authorize: the token below)\n"
              f"Dashboard  {stack.dashboard_link}\n"
              f"Token      {stack.admin_token}  (user admin: every role, every region; this run only)\n"
              f"MQTT       127.0.0.1:{stack.mqtt.port}   PostgreSQL 127.0.0.1:{stack.pg.port}\n"
              f"Logs       {stack.dir}\nPress Ctrl-C to stop everything.\n", flush=True)
        started = time.monotonic()
        prev: dict[str, int] = {}
        last = time.monotonic()
        while not stop.wait(5.0):
            for site, proc in stack.agents.items():
                if proc.poll() is not None:
                    print(f"agent {site} exited with {proc.returncode}; see {stack.dir}/agent-{site}.log")
            try:
                snap = stack.stats()
            except Exception as exc:  # the API may be restarting; keep going
                print(f"stats unavailable: {exc}")
                continue
            now = time.monotonic()
            rows = {k: int(v) for k, v in dict(snap.get("rows_by_region", {})).items()}  # type: ignore[call-overload]
            msgs = snap.get("messages", {})
            print(f"rows: {_fmt_rates(prev, rows, now - last)} | messages {msgs} | "
                  f"decisions {snap.get('decisions')} | rejections {snap.get('rejections')}", flush=True)
            prev, last = rows, now
            if args.duration is not None and now - started >= args.duration:
                break
        return 0
    except ComponentError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping agents, ingest, Mosquitto, PostgreSQL ...", flush=True)
        stack.cleanup()
        print("stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
