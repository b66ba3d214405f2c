"""``ingest serve``: run the consumer and the API. ``ingest check``: validate configuration and stores.
``ingest users ...`` / ``ingest tokens ...``: users and API tokens (:mod:`ingest.auth.cli`)."""

from __future__ import annotations

import logging
import sys

import typer

from ingest.auth.cli import tokens_app, users_app
from ingest.config import load_settings
from ingest.errors import IngestError

app = typer.Typer(add_completion=False, help="Residency-aware telemetry ingest service.")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


EXIT_FATAL = 70
"""``ingest serve``'s exit status when a worker thread died (EX_SOFTWARE): restart me."""
_FATAL_GRACE_S = 30.0


class _FatalExit:
    """``on_fatal`` of ``ingest serve``: a worker thread died. Ask the server to stop gracefully (uvicorn shuts
    down, the consumer stops without acknowledging anything more), then ``serve`` exits with EXIT_FATAL; exit
    hard if the graceful stop takes too long."""

    def __init__(self) -> None:
        self.server: object | None = None  # the uvicorn.Server, once built

    def __call__(self, reason: str) -> None:
        import os
        import threading

        def hard_exit() -> None:
            sys.stderr.write(f"ingest: {reason}; graceful stop took over {_FATAL_GRACE_S:.0f} s, exiting\n")
            os._exit(EXIT_FATAL)

        timer = threading.Timer(_FATAL_GRACE_S, hard_exit)
        timer.daemon = True
        timer.start()
        if self.server is not None:
            self.server.should_exit = True  # type: ignore[attr-defined]


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve() -> None:
    """Start the MQTT consumer and the HTTP API (settings from INGEST_* environment variables)."""
    import uvicorn

    from ingest.api.server import uvicorn_config
    from ingest.service import IngestService

    on_fatal = _FatalExit()
    try:
        settings = load_settings()
        _setup_logging(settings.log_level)
        service = IngestService(settings, on_fatal=on_fatal)
    except IngestError as exc:
        typer.echo(f"ingest: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # policy load errors etc.: one clear line, not a traceback
        typer.echo(f"ingest: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    # forwarded headers only from INGEST_API_TRUSTED_PROXIES (ingest.api.server)
    server = uvicorn.Server(uvicorn_config(service.app(), host=settings.api_host, port=settings.api_port))
    on_fatal.server = server
    if service.fatal:  # died before the server object existed
        server.should_exit = True
    server.run()
    if service.fatal:
        typer.echo(f"ingest: {service.fatal}; exiting with status {EXIT_FATAL} so that a supervisor restarts it",
                   err=True)
        raise typer.Exit(EXIT_FATAL)


@app.command()
def check() -> None:
    """Validate settings and registry, reach and migrate every store, load the policy; one line per check."""
    from ingest.cells.topology import check_raw_processing
    from ingest.registry import load_registry
    from ingest.service import build_policy, check_regions, load_cell, prepare_stores

    failed = False

    def step(name: str, fn: object) -> object:
        nonlocal failed
        try:
            result = fn()  # type: ignore[operator]
        except Exception as exc:
            failed = True
            typer.echo(f"FAIL {name}: {exc}")
            return None
        typer.echo(f"ok   {name}")
        return result

    settings = step("settings", load_settings)
    if settings is None:
        raise typer.Exit(1)
    registry = step(f"registry {settings.registry_file}", lambda: load_registry(settings.registry_file))
    topology = None
    if registry is not None:
        if settings.topology_file is not None:
            topology = step(f"topology {settings.topology_file} (cell {settings.cell})",
                            lambda: load_cell(settings, registry))
        step("region DSNs match registry", lambda: check_regions(settings, registry, topology))
    step("stores reachable and migrated", lambda: prepare_stores(settings, strict=True))
    engine = step(f"policy ({settings.policy_engine})", lambda: build_policy(settings))
    if engine is not None:
        step(f"policy keeps the platform invariants ({settings.policy_invariants_file})",
             lambda: _keeps_invariants(engine, settings.policy_invariants_file))
    if topology is not None and engine is not None and settings.topology_file is not None:
        step("every site's raw payload may be processed in its cell's country (data.residency.raw_processing)",
             lambda: check_raw_processing(topology, registry, engine, settings.topology_file))  # type: ignore[arg-type]
    raise typer.Exit(1 if failed else 0)


def _keeps_invariants(engine: object, path: object) -> None:
    from policy import invariants

    found = invariants.load(path)  # type: ignore[arg-type]
    violations = invariants.check(engine, found)  # type: ignore[arg-type]
    if violations:
        raise invariants.InvariantsBroken(engine.revision, violations)  # type: ignore[attr-defined]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
