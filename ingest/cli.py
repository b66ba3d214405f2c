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


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve() -> None:
    """Start the MQTT consumer and the HTTP API (settings from INGEST_* environment variables)."""
    from ingest.api.server import serve as serve_api
    from ingest.service import IngestService

    try:
        settings = load_settings()
        _setup_logging(settings.log_level)
        service = IngestService(settings)
    except IngestError as exc:
        typer.echo(f"ingest: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # policy load errors etc.: one clear line, not a traceback
        typer.echo(f"ingest: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    # forwarded headers only from INGEST_API_TRUSTED_PROXIES (ingest.api.server)
    serve_api(service.app(), host=settings.api_host, port=settings.api_port)


@app.command()
def check() -> None:
    """Validate settings and registry, reach and migrate every store, load the policy; one line per check."""
    from ingest.registry import load_registry
    from ingest.service import build_policy, check_regions, prepare_stores

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
    if registry is not None:
        step("region DSNs match registry", lambda: check_regions(settings, registry))
    step("stores reachable and migrated", lambda: prepare_stores(settings))
    engine = step(f"policy ({settings.policy_engine})", lambda: build_policy(settings))
    if engine is not None:
        step(f"policy keeps the platform invariants ({settings.policy_invariants_file})",
             lambda: _keeps_invariants(engine, settings.policy_invariants_file))
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
