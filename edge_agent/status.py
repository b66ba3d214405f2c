"""The agent's status, for operators: ``state_dir/status.json`` and ``edge-agent status``.

The running agent rewrites ``status.json`` every ``status_interval_s`` (write to a temporary file,
then rename, so a reader never sees half a file). ``edge-agent status`` runs in another process: it
reads that file, checks whether the agent that wrote it is alive, and reads the queue depth
straight from the SQLite queue (read-only), so the depth is exact even while the agent is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.outbox import QueueSnapshot
from edge_agent.snapshot import AgentSnapshot

__all__ = ["STATUS_NAME", "StatusWriter", "format_status", "read_status", "status_document"]

log = logging.getLogger(__name__)

STATUS_NAME = "status.json"
STATUS_VERSION = 1


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds") if epoch is not None else None


def _queue_dict(snapshot: QueueSnapshot | None, now: float) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    data = asdict(snapshot)
    data["oldest_reading_age_s"] = (
        round(now - snapshot.oldest_reading_ts, 3) if snapshot.oldest_reading_ts is not None else None
    )
    data["oldest_reading_at"] = _iso(snapshot.oldest_reading_ts)
    data["last_full_at"] = _iso(snapshot.last_full_at)
    del data["oldest_reading_ts"]
    return data


def status_document(snapshot: AgentSnapshot) -> dict[str, Any]:
    """The status of a running (or finished) agent, from its snapshot, as a JSON-able dict; raises the queue's
    error when the snapshot could not read the queue."""
    if snapshot.queue_error is not None:
        raise snapshot.queue_error
    now = time.time()
    sources = {}
    for device, health in snapshot.sources.items():
        h = asdict(health)
        for key in ("last_reading_at", "last_error_at", "retry_at"):
            h[key] = _iso(h[key])
        h["last_reading_age_s"] = round(now - health.last_reading_at, 3) if health.last_reading_at else None
        sources[device] = h
    return {
        "v": STATUS_VERSION,
        "gateway_id": snapshot.gateway_id,
        "site_id": snapshot.site_id,
        "pid": os.getpid(),
        "state": "running" if snapshot.running else "stopped",
        "started_at": snapshot.started_at.isoformat(timespec="milliseconds"),
        "updated_at": _iso(now),
        "interval_s": snapshot.status_interval_s,
        "broker": {
            "host": snapshot.broker_host,
            "port": snapshot.broker_port,
            "connected": snapshot.connected,
            "connected_since": _iso(snapshot.connected_since),
            "connects": snapshot.connects,
            "last_error": snapshot.last_error,
        },
        "last_publish_at": _iso(snapshot.last_ack_at),
        "queue": _queue_dict(snapshot.queue, now),
        "sources": sources,
        "devices": {d: asdict(s) for d, s in snapshot.devices.items()},
    }


def write_status(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1))
    os.replace(tmp, path)


class StatusWriter:
    """Rewrites ``state_dir/status.json`` every ``interval_s`` from a thread, and once more at the end, from
    the snapshots ``snapshot`` takes (:meth:`edge_agent.agent.Agent.snapshot`)."""

    def __init__(self, snapshot: Callable[[], AgentSnapshot], state_dir: Path, interval_s: float) -> None:
        self.snapshot = snapshot
        self.path = Path(state_dir) / STATUS_NAME
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._failed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._write()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write()

    def _write(self) -> None:
        try:
            write_status(self.path, status_document(self.snapshot()))
            self._failed = False
        except Exception as exc:  # the status file is for humans; never stop the agent for it
            if not self._failed:
                log.warning("cannot write %s: %s", self.path, exc)
            self._failed = True


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status the agent wrote, or None when there is none (never started here)."""
    try:
        data = json.loads((Path(state_dir) / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _since(iso: str | None, now: float) -> str:
    if not iso:
        return "never"
    return f"{_age(now - datetime.fromisoformat(iso).timestamp())} ago"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n} B"


def format_status(doc: dict[str, Any] | None, queue: QueueSnapshot | None, *, alive: bool) -> tuple[list[str], bool]:
    """Lines for ``edge-agent status`` and whether everything is healthy."""
    now = time.time()
    lines: list[str] = []
    healthy = alive
    if doc is None:
        lines.append("agent     : no status file (the agent has not run with this state_dir)")
        healthy = False
    else:
        written = _since(doc.get("updated_at"), now)
        if alive:
            lines.append(
                f"agent     : running (pid {doc.get('pid')}, since {doc.get('started_at')}; status written {written})"
            )
            updated = doc.get("updated_at")
            interval = float(doc.get("interval_s") or 2.0)
            if updated and now - datetime.fromisoformat(updated).timestamp() > 3 * interval + 5:
                healthy = False
                lines.append("WARNING   : the status file is stale: the agent may be hung")
        else:
            lines.append(f"agent     : NOT RUNNING (stopped or killed; last status written {written})")
        broker = doc.get("broker") or {}
        where = f"{broker.get('host')}:{broker.get('port')}"
        if alive and broker.get("connected"):
            lines.append(f"broker    : connected to {where} since {broker.get('connected_since')}")
        else:
            healthy = False
            error = broker.get("last_error") or ("connecting" if alive else "agent not running")
            lines.append(f"broker    : DISCONNECTED from {where} ({error})")
        lines.append(f"publish   : last acknowledged batch {_since(doc.get('last_publish_at'), now)}")
    if queue is None and doc is not None and doc.get("queue"):
        q = doc["queue"]
        queue_line = (
            f"{q['batches']} batch(es), {q['readings']} reading(s), {_size(q['bytes'])} "
            f"(from the status file; oldest reading {_age(q.get('oldest_reading_age_s'))} old)"
        )
        full = (q["evicted_batches"], q["evicted_readings"], q["refused_batches"], q["refused_readings"])
        bounds = (q["max_batches"], q["max_bytes"], q["when_full"], q.get("last_full_at"))
    elif queue is not None:
        age = now - queue.oldest_reading_ts if queue.oldest_reading_ts is not None else None
        queue_line = (
            f"{queue.batches} batch(es), {queue.readings} reading(s), {_size(queue.bytes)}; "
            f"oldest unsent reading {_age(age)} old"
        )
        full = (queue.evicted_batches, queue.evicted_readings, queue.refused_batches, queue.refused_readings)
        bounds = (queue.max_batches, queue.max_bytes, queue.when_full, _iso(queue.last_full_at))
    else:
        queue_line, full, bounds = "unknown", (0, 0, 0, 0), None
    lines.append(f"queue     : {queue_line}")
    if bounds is not None:
        lines.append(f"bounds    : {bounds[0]} batches / {_size(bounds[1])}, when full: {bounds[2]}")
    if any(full):
        healthy = False
        lines.append(
            f"QUEUE FULL: {full[0]} batch(es) ({full[1]} readings) dropped (oldest first), "
            f"{full[2]} batch(es) ({full[3]} readings) refused; last at {bounds[3] if bounds else '?'}"
        )
    for device, src in ((doc or {}).get("sources") or {}).items():
        state = src.get("state")
        text = f"source    : {device} ({src.get('kind')}) {state}"
        text += f", {src.get('readings')} reading(s), last {_since(src.get('last_reading_at'), now)}"
        if src.get("errors"):
            text += f", {src['errors']} error(s)"
        if state == "failing" or (src.get("consecutive_failures") or 0) > 0:
            healthy = False
            text += f"; FAILING x{src.get('consecutive_failures')}: {src.get('last_error')}"
            if src.get("retry_at"):
                text += f" (next try at {src['retry_at']})"
        lines.append(text)
    return lines, healthy
