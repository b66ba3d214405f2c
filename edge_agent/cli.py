"""The ``edge-agent`` command: ``run`` the agent, ``check`` a config, its sources and the broker,
``status`` of a running (or stopped) agent, ``keygen`` and ``pseudonym`` for edge pseudonymization.

Exit codes (every command): 0 success; 1 a check failed, batches were not acknowledged, ``status``
found a problem (not running, disconnected, a source failing, data dropped), or ``keygen`` could not
write the key; 2 the config is unusable (or names no key for ``pseudonym``), or the command line is
wrong (unknown command or option, missing ``--config``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.agent import Agent, DeviceStats
from edge_agent.config import AgentConfig, load_config
from edge_agent.diskqueue import read_snapshot
from edge_agent.errors import AgentError, ConfigError, PublishError
from edge_agent.logs import LogFormat, setup_logging
from edge_agent.mqtt import probe_broker
from edge_agent.privacy import Pseudonymizer, generate_key_file, loosely_protected, read_key
from edge_agent.sources import Source, create_source
from edge_agent.statelock import lock_holder
from edge_agent.status import format_status, read_status
from wire import Reading

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
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="text: classic lines; json: one JSON object per line (ts, level, logger, msg, fields such as device_id).",
    ),
]


def _setup_logging(level: str, fmt: LogFormat = LogFormat.text) -> None:
    setup_logging(level, fmt)


def _fail(fmt: LogFormat, exc: AgentError, code: int) -> typer.Exit:
    """Report an error that stops ``run`` before the agent starts: a line of text, or a JSON log line."""
    if fmt is LogFormat.json:
        extra: dict[str, object] = {"error": type(exc).__name__}
        if isinstance(exc, ConfigError):
            extra.update(file=exc.file, line=exc.line, field=exc.field, reason=exc.reason)
        log.error("%s", exc, extra=extra)
    else:
        typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


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
                (s.batches_dropped, "dropped (queue full)"),
                (s.batches_refused, "refused (queue full)"),
                (s.batches_rejected, "rejected"),
                (s.batches_unrouted, "unrouted (no subscriber, sent again)"),
                (s.batches_unauthorized, "not authorized by the broker ACL (kept, sent again)"),
                (s.source_errors, "source errors"),
            )
            if n
        ]
        parts.append(part + (f" [{', '.join(extra)}]" if extra else ""))
    return " | ".join(parts)


def _report(agent: Agent, every_s: float, done: threading.Event) -> None:
    while not done.wait(every_s):
        connected = agent.connected
        state = "connected" if connected else f"disconnected ({agent.last_error or 'connecting'})"
        snapshot = agent.queue_snapshot()
        queued = f"queue {snapshot.batches} | " if snapshot is not None else ""
        stats = agent.stats()
        fields: dict[str, object] = {
            "connected": connected,
            "queue_batches": snapshot.batches if snapshot is not None else None,
            "batches_acked": sum(s.batches_acked for s in stats.values()),
            "batches_dropped": sum(s.batches_dropped + s.batches_refused for s in stats.values()),
            "source_errors": sum(s.source_errors for s in stats.values()),
        }
        log.info("%s | %s%s", state, queued, summary(stats), extra=fields)


@app.command()
def run(
    config: ConfigOption,
    batches: Annotated[
        int | None,
        typer.Option("--batches", min=1, help="Publish exactly N batches per device, wait for the acks, exit."),
    ] = None,
    report_every: Annotated[float, typer.Option("--report-every", min=0.1, help="Seconds between log lines.")] = 5.0,
    log_level: LogLevel = "INFO",
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Run the agent until SIGINT/SIGTERM (or until --batches are acknowledged)."""
    _setup_logging(log_level, log_format)
    try:
        agent = Agent(load_config(config))
    except ConfigError as exc:
        raise _fail(log_format, exc, 2) from None
    except AgentError as exc:
        raise _fail(log_format, exc, 1) from None
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        log.info("%s received: stopping", name, extra={"signal": name})
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    done = threading.Event()
    reporter = threading.Thread(target=_report, args=(agent, report_every, done), name="report", daemon=True)
    reporter.start()
    try:
        stats = agent.run(stop, batches)
    except PublishError as exc:
        log.error("%s", exc, extra={"unacked": exc.unacked})
        log.info("final | %s", summary(agent.stats()))
        raise typer.Exit(1) from None
    except AgentError as exc:
        log.error("%s", exc, extra={"error": type(exc).__name__})
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


def _probe_source(source: Source, timeout_s: float) -> str:
    """init(), then for networked sources start(), one read() and stop(), within ``timeout_s``."""
    source.init()
    kind = str(getattr(source, "kind", type(source).__name__))
    if kind == "simulated":
        return "simulated, initialised"
    outcome: list[str] = []
    failure: list[BaseException] = []

    def probe() -> None:
        try:
            source.start()
            try:
                readings: list[Reading] = []
                deadline = time.monotonic() + min(timeout_s, max(2.0, 2 * source.poll_interval_s))
                while not readings and time.monotonic() < deadline:
                    readings = source.read()
                    if not readings:
                        time.sleep(min(0.2, source.poll_interval_s))
                fields = sorted({f for r in readings for f in r.values})
                outcome.append(
                    f"{kind} reachable, read {len(fields)} field(s)" + (f": {', '.join(fields)}" if fields else "")
                )
            finally:
                source.stop()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=probe, name=f"check-{source.device_id}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AgentError(f"{kind} did not answer within {timeout_s:.0f} s")
    if failure:
        raise failure[0]
    return outcome[0]


@app.command()
def check(
    config: ConfigOption,
    log_level: LogLevel = "WARNING",
    source_timeout_s: Annotated[
        float, typer.Option("--source-timeout", min=1, help="Seconds allowed per source check.")
    ] = 20.0,
) -> None:
    """Check the config, the state dir, the privacy keys, each source (reachable, one read) and the broker."""
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
        raise typer.Exit(2) from None  # unusable config: 2, as for every command
    line(True, "config", f"{config} ({len(cfg.sources)} source(s), gateway {cfg.gateway_id}, site {cfg.site_id})")
    try:
        line(True, "state", _check_state_dir(cfg))
    except AgentError as exc:
        line(False, "state", str(exc))
    for what, detail, ok in _check_privacy(cfg):
        line(ok, what, detail)
    for settings in cfg.sources:
        try:
            line(True, f"source {settings.device_id}", _probe_source(create_source(settings), source_timeout_s))
        except Exception as exc:  # report any failure of a source as a failed check
            line(False, f"source {settings.device_id}", getattr(exc, "reason", None) or str(exc) or type(exc).__name__)
    try:
        line(True, "broker", probe_broker(cfg.broker, client_id=f"{cfg.gateway_id}-check-{os.getpid()}"))
    except AgentError as exc:
        line(False, "broker", str(exc))
    if cfg.metrics.enabled:
        from edge_agent.metrics import check_listen

        try:
            line(True, "metrics", check_listen(cfg.metrics.host, cfg.metrics.port))
        except AgentError as exc:
            line(False, "metrics", f"{exc} (is an agent with this config already running?)")
    if failed:
        raise typer.Exit(1)


def _check_privacy(cfg: AgentConfig) -> list[tuple[str, str, bool]]:
    lines = []
    keyrings = [("privacy", cfg.privacy)] + [
        (f"privacy {s.device_id}", s.privacy) for s in cfg.sources if s.privacy is not None and s.privacy.keys
    ]
    fields = sorted({f for i in range(len(cfg.sources)) for f in cfg.privacy_of(i)[0]})
    for what, settings in keyrings:
        if settings is None or not settings.keys:
            continue
        active = settings.active
        loose = [str(k.file) for k in settings.keys if loosely_protected(k.file)]
        try:
            for key in settings.keys:
                read_key(key.file)
        except ValueError as exc:
            lines.append((what, str(exc), False))
            continue
        detail = (
            f"{len(settings.keys)} key(s), active {active.id if active else '-'}; pseudonymizing {fields or 'nothing'}"
        )
        if loose:
            lines.append(
                (what, f"{detail}; key file(s) readable by group/others: {', '.join(loose)} (chmod 600)", False)
            )
        else:
            lines.append((what, detail, True))
    return lines


@app.command()
def status(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status document (JSON).")] = False,
) -> None:
    """Show queue depth, oldest unsent reading, last publish and each source's health (from state_dir)."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    doc = read_status(cfg.state_dir)
    pid = lock_holder(cfg.state_dir)
    alive = pid is not None and doc is not None and doc.get("pid") == pid and doc.get("state") == "running"
    q = cfg.queue
    snapshot = (
        read_snapshot(cfg.state_dir, max_batches=q.max_batches, max_bytes=int(q.max_bytes), when_full=q.when_full)
        if q.kind == "disk"
        else None
    )
    if as_json:
        out = dict(doc or {})
        out["alive"] = alive
        if snapshot is not None:
            out["queue_now"] = {
                "batches": snapshot.batches,
                "readings": snapshot.readings,
                "bytes": snapshot.bytes,
                "oldest_reading_age_s": time.time() - snapshot.oldest_reading_ts
                if snapshot.oldest_reading_ts
                else None,
            }
        typer.echo(json.dumps(out, indent=1))
        raise typer.Exit(0 if alive else 1)
    lines, healthy = format_status(doc, snapshot, alive=alive)
    typer.echo(f"edge-agent {cfg.gateway_id} (site {cfg.site_id}), state_dir {cfg.state_dir}")
    for text in lines:
        typer.echo(text)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new key (must not exist).", dir_okay=False)],
) -> None:
    """Create a pseudonymization key: 32 random bytes as hex, readable by the owner only (mode 600)."""
    try:
        generate_key_file(path)
    except FileExistsError:
        typer.echo(f"error: {path} exists; a key is never overwritten (rotate by adding a new key id)", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {path} (mode 600); list it under privacy.keys with a new id")


@app.command()
def pseudonym(
    config: ConfigOption,
    value: Annotated[str, typer.Argument(help="The clear value, e.g. a badge id.")],
    device: Annotated[
        str | None, typer.Option("--device", help="Use this device's keys (default: the site's).")
    ] = None,
) -> None:
    """Print the pseudonym of VALUE under every configured key (to find a person's records on request)."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = cfg.privacy
    if device is not None:
        index = next((i for i, s in enumerate(cfg.sources) if s.device_id == device), None)
        if index is None:
            typer.echo(f"error: no source with device_id {device!r}", err=True)
            raise typer.Exit(2)
        settings = cfg.privacy_of(index)[1]
    if not settings.keys:
        typer.echo("error: no pseudonymization key is configured", err=True)
        raise typer.Exit(2)
    active = settings.active
    for key in settings.keys:
        try:
            pseudo = Pseudonymizer([], key.id, read_key(key.file)).pseudonym(value)
        except ValueError as exc:
            typer.echo(f"{key.id}: error: {exc}")
            continue
        marker = " (active)" if active is not None and key.id == active.id else ""
        typer.echo(f"{key.id}: {pseudo}{marker}")


def main() -> None:
    """Entry point of the ``edge-agent`` console script."""
    app(prog_name="edge-agent")
