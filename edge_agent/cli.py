"""The ``edge-agent`` command: ``run`` the agent, or ``check`` a config, its sources and the broker.

Exit codes: 0 success; 1 a check failed or batches were not acknowledged; 2 the config is unusable.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.agent import Agent, DeviceStats
from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import AgentError, ConfigError, PublishError
from edge_agent.mqtt import probe_broker
from edge_agent.sources import create_source

__all__ = ["app", "main"]

log = logging.getLogger("edge_agent")

app = typer.Typer(
    name="edge-agent",
    help="Edge agent of a factory gateway: samples machines and publishes batches over MQTT.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Agent config file (YAML).", dir_okay=False)]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def summary(stats: dict[str, DeviceStats]) -> str:
    """One line of per-device counts."""
    parts = []
    for device, s in stats.items():
        part = (
            f"{device}: {s.batches_acked}/{s.batches_published} batches acked "
            f"({s.readings_acked} readings), seq {s.last_seq if s.last_seq is not None else '-'}"
        )
        extra = [
            f"{n} {what}"
            for n, what in (
                (s.batches_republished, "republished"),
                (s.batches_dropped, "dropped"),
                (s.batches_rejected, "rejected"),
                (s.source_errors, "source errors"),
            )
            if n
        ]
        parts.append(part + (f" [{', '.join(extra)}]" if extra else ""))
    return " | ".join(parts)


def _report(agent: Agent, every_s: float, done: threading.Event) -> None:
    while not done.wait(every_s):
        state = "connected" if agent.connected else f"disconnected ({agent.last_error or 'connecting'})"
        log.info("%s | %s", state, summary(agent.stats()))


@app.command()
def run(
    config: ConfigOption,
    batches: Annotated[
        int | None,
        typer.Option("--batches", min=1, help="Publish exactly N batches per device, wait for the acks, exit."),
    ] = None,
    report_every: Annotated[float, typer.Option("--report-every", min=0.1, help="Seconds between log lines.")] = 5.0,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the agent until SIGINT/SIGTERM (or until --batches are acknowledged)."""
    _setup_logging(log_level)
    try:
        agent = Agent(load_config(config))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except AgentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    done = threading.Event()
    reporter = threading.Thread(target=_report, args=(agent, report_every, done), name="report", daemon=True)
    reporter.start()
    try:
        stats = agent.run(stop, batches)
    except PublishError as exc:
        log.error("%s", exc)
        log.info("final | %s", summary(agent.stats()))
        raise typer.Exit(1) from None
    except AgentError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from None
    finally:
        done.set()
    log.info("stopped | %s", summary(stats))


def _check_state_dir(cfg: AgentConfig) -> str:
    path = cfg.state_dir.resolve()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AgentError(f"state_dir {path}: {existing or path} is not a writable directory")
    return f"state_dir {path} is writable" + ("" if existing == path else " (will be created)")


@app.command()
def check(config: ConfigOption, log_level: LogLevel = "WARNING") -> None:
    """Check the config, each source's init() and that the broker accepts a connection."""
    _setup_logging(log_level)
    failed = False

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failed
        failed = failed or not ok
        typer.echo(f"{'ok  ' if ok else 'FAIL'}  {what}: {detail}")

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        line(False, "config", str(exc))
        raise typer.Exit(1) from None
    line(True, "config", f"{config} ({len(cfg.sources)} source(s), gateway {cfg.gateway_id}, site {cfg.site_id})")
    try:
        line(True, "state", _check_state_dir(cfg))
    except AgentError as exc:
        line(False, "state", str(exc))
    for settings in cfg.sources:
        try:
            create_source(settings).init()
            line(True, f"source {settings.device_id}", f"{settings.type} initialised")
        except Exception as exc:  # report any failure of a source's init as a failed check
            line(False, f"source {settings.device_id}", str(exc))
    try:
        line(True, "broker", probe_broker(cfg.broker, client_id=f"{cfg.gateway_id}-check-{os.getpid()}"))
    except AgentError as exc:
        line(False, "broker", str(exc))
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``edge-agent`` console script."""
    app(prog_name="edge-agent")
