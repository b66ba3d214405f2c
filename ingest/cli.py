"""``ingest serve``: run the consumer and the API. ``ingest check``: validate configuration and stores.
``ingest users ...`` / ``ingest tokens ...``: users and API tokens (:mod:`ingest.auth.cli`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

import typer

from ingest.auth.cli import tokens_app, users_app
from ingest.config import IngestSettings, load_settings
from ingest.errors import IngestError

T = TypeVar("T")

if TYPE_CHECKING:
    from pathlib import Path

    from ingest.service import IngestService
    from ingest.workers import WorkerRole
    from policy.engine import PolicyEngine
    from policy.processing import DocumentEngine

app = typer.Typer(add_completion=False, help="Residency-aware telemetry ingest service.")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


EXIT_FATAL = 70
"""``ingest serve``'s exit status when a worker thread died (EX_SOFTWARE): restart me."""
_FATAL_GRACE_S = 30.0


class _FatalExit:
    """``on_fatal`` of ``ingest serve``: a worker thread died. Ask the server to stop gracefully (uvicorn shuts
    down, the consumer stops without acknowledging anything more), then ``serve`` exits with EXIT_FATAL; exit
    hard if the graceful stop takes too long. A headless worker process (``--workers``) has no server: its
    ``stopping`` event is set instead."""

    def __init__(self, stopping: threading.Event | None = None) -> None:
        self.server: object | None = None  # the uvicorn.Server, once built
        self.stopping = stopping

    def __call__(self, reason: str) -> None:
        def hard_exit() -> None:
            sys.stderr.write(f"ingest: {reason}; graceful stop took over {_FATAL_GRACE_S:.0f} s, exiting\n")
            os._exit(EXIT_FATAL)

        timer = threading.Timer(_FATAL_GRACE_S, hard_exit)
        timer.daemon = True
        timer.start()
        if self.server is not None:
            self.server.should_exit = True  # type: ignore[attr-defined]
        if self.stopping is not None:
            self.stopping.set()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve(
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=256,
        help="Consumer processes of this replica, in its shared-subscription group (default: INGEST_WORKERS, else "
        "the CPUs this process may run on). Worker 0 serves the API; docs/small-messages.md.",
    ),
) -> None:
    """Start the MQTT consumer and the HTTP API (settings from INGEST_* environment variables)."""
    from ingest.workers import WorkerRole, default_workers, supervise

    try:
        settings = load_settings()
    except IngestError as exc:
        typer.echo(f"ingest: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # one clear line, not a traceback
        typer.echo(f"ingest: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    _setup_logging(settings.log_level)
    role = WorkerRole.from_env()
    count = workers or settings.workers or default_workers()
    if role is None and count > 1:
        raise typer.Exit(supervise(count, settings.mqtt_client_id))
    if role is not None and not role.serves_api:
        raise typer.Exit(_serve_headless(settings, role))
    _serve_api(settings, role)


def _serve_api(settings: IngestSettings, role: WorkerRole | None) -> None:
    """One process (or worker 0 of several): the consumer and the API."""
    import uvicorn

    from ingest.api.server import uvicorn_config
    from ingest.workers import GroupStatus

    on_fatal = _FatalExit()
    service = _build_service(settings, on_fatal)
    if role is not None:  # the API answers for the whole replica: every worker's counters
        service.runtime.pipeline = GroupStatus(role, service.stats)
    # forwarded headers only from INGEST_API_TRUSTED_PROXIES (ingest.api.server)
    server = uvicorn.Server(uvicorn_config(service.app(), host=settings.api_host, port=settings.api_port))
    on_fatal.server = server
    if service.fatal:  # died before the server object existed
        server.should_exit = True
    server.run()
    if service.fatal:
        typer.echo(
            f"ingest: {service.fatal}; exiting with status {EXIT_FATAL} so that a supervisor restarts it", err=True
        )
        raise typer.Exit(EXIT_FATAL)


def _serve_headless(settings: IngestSettings, role: WorkerRole) -> int:
    """Worker 1..N-1 of ``--workers``: the consumer without an API; its counters go to worker 0 through the
    supervisor's directory. Stops on SIGTERM/SIGINT (0) or when a worker thread dies (EXIT_FATAL)."""
    from ingest.workers import Reporter

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    service = _build_service(settings, _FatalExit(stopping))
    service.start()
    reporter = Reporter(role, service.stats.snapshot)
    reporter.start()
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        service.stop()
        reporter.stop()
    if service.fatal:
        typer.echo(f"ingest: worker {role.index}: {service.fatal}; exiting with status {EXIT_FATAL}", err=True)
        return EXIT_FATAL
    return 0


GC_THRESHOLD = (50_000, 20, 20)
"""The collector's thresholds in ``ingest serve``. The routing makes a row object per value and frees it by
reference counting; with Python's default (700 allocations) the young-generation passes over those rows cost
15 % of routing a 100-reading message (docs/small-messages.md). Cycles are rare here, so collecting them
less often costs little memory."""


def _build_service(settings: IngestSettings, on_fatal: _FatalExit) -> IngestService:
    import gc

    from ingest.service import IngestService

    try:
        service = IngestService(settings, on_fatal=on_fatal)
        gc.freeze()  # what the service built at start (registry, policy, pools) is never collected: not scanned
        gc.set_threshold(*GC_THRESHOLD)
        return service
    except IngestError as exc:
        typer.echo(f"ingest: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # policy load errors etc.: one clear line, not a traceback
        typer.echo(f"ingest: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def check() -> None:
    """Validate settings and registry, reach and migrate every store, load the policy; one line per check."""
    from ingest.cells.topology import check_raw_processing
    from ingest.registry import load_registry
    from ingest.service import build_policy, check_regions, load_cell, prepare_stores

    failed = False

    def step(name: str, fn: Callable[[], T]) -> T | None:
        nonlocal failed
        try:
            result = fn()
        except Exception as exc:
            failed = True
            typer.echo(f"FAIL {name}: {exc}")
            return None
        typer.echo(f"ok   {name}")
        return result

    loaded = step("settings", load_settings)
    if loaded is None:
        raise typer.Exit(1)
    settings = loaded
    registry = step(f"registry {settings.registry_file}", lambda: load_registry(settings.registry_file))
    topology = None
    if registry is not None:
        known = registry
        if settings.topology_file is not None:
            topology = step(
                f"topology {settings.topology_file} (cell {settings.cell})", lambda: load_cell(settings, known)
            )
        step("region DSNs match registry", lambda: check_regions(settings, known, topology))
    step("stores reachable and migrated", lambda: prepare_stores(settings, strict=True))
    engine = step(f"policy ({settings.policy_engine})", lambda: build_policy(settings))
    if engine is not None:
        decider = engine
        step(
            f"policy keeps the platform invariants ({settings.policy_invariants_file})",
            lambda: _keeps_invariants(decider, settings.policy_invariants_file),
        )
        if topology is not None and registry is not None and settings.topology_file is not None:
            cells, sites, where = topology, registry, settings.topology_file
            step(
                "every site's raw payload may be processed in its cell's country (data.residency.raw_processing)",
                # every engine build_policy makes evaluates other documents too (policy.processing.DocumentEngine)
                lambda: check_raw_processing(cells, sites, cast("DocumentEngine", decider), where),
            )
    raise typer.Exit(1 if failed else 0)


def _keeps_invariants(engine: PolicyEngine, path: Path) -> None:
    from policy import invariants

    found = invariants.load(path)
    violations = invariants.check(engine, found)
    if violations:
        raise invariants.InvariantsBroken(engine.revision, violations)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
