"""Several consumer processes in one replica: ``ingest serve --workers N`` (docs/small-messages.md).

One Python process routes and encodes on one core at a time (the GIL). With ``--workers N`` the command becomes a
supervisor of N ``ingest serve`` processes on the same host, in the replica's shared-subscription group, so the
broker spreads the messages over them and the replica uses N cores:

- **worker 0** keeps the replica's MQTT client id and serves the API on ``INGEST_API_PORT``; its
  ``/api/v1/stats`` and health are the replica's: its own counters plus the others' (:class:`GroupStatus`);
- **workers 1..N-1** run the consumer only (no HTTP server), with the client id ``<id>-w<i>`` (a persistent
  session each), and write their counters every :data:`REPORT_S` seconds into the supervisor's private directory;
- every worker is a full replica for the stores: exactly once, acknowledgement after commit, quarantine and gaps
  are the same code as with one process (several replicas already share a store);
- the supervisor forwards SIGTERM/SIGINT; when a worker exits on its own (a dead thread exits 70), it stops the
  others and exits with that worker's status (70 if it was 0), so the replica's supervisor (Docker, systemd)
  restarts the whole replica, as it does for one process.

Prometheus metrics stay per process: ``/metrics`` is worker 0's. The replica's totals are in ``/api/v1/stats``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("ingest.workers")

REPORT_S = 0.2
"""How often a headless worker writes its counters for worker 0."""
STALE_S = 10.0
"""A worker whose counters are older than this is reported unhealthy by worker 0 (it is hung or gone)."""
STOP_GRACE_S = 30.0
"""How long the supervisor waits for the workers to stop before killing them."""
EXIT_FATAL = 70

_INDEX, _COUNT, _DIR = "INGEST_WORKER_INDEX", "INGEST_WORKER_COUNT", "INGEST_WORKER_DIR"


def default_workers() -> int:
    """The CPUs this process may run on (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerRole:
    """What the supervisor told this process: which worker it is, of how many, where the counters go."""

    index: int
    count: int
    directory: Path

    @classmethod
    def from_env(cls) -> WorkerRole | None:
        if _INDEX not in os.environ:
            return None
        return cls(int(os.environ[_INDEX]), int(os.environ[_COUNT]), Path(os.environ[_DIR]))

    @property
    def serves_api(self) -> bool:
        return self.index == 0

    def report_file(self, index: int | None = None) -> Path:
        return self.directory / f"worker-{self.index if index is None else index}.json"


def worker_env(base: dict[str, str], client_id: str, index: int, count: int, directory: Path) -> dict[str, str]:
    """The environment of worker ``index``: one process each, its own MQTT session (worker 0 keeps the replica's
    client id, so going from one process to several keeps the session that may hold unacknowledged messages)."""
    env = {**base, "INGEST_WORKERS": "1", _INDEX: str(index), _COUNT: str(count), _DIR: str(directory)}
    if index > 0:
        env["INGEST_MQTT_CLIENT_ID"] = f"{client_id}-w{index}"
    return env


def supervise(count: int, client_id: str, command: list[str] | None = None) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT (then 0) or until one exits on its own (then its status, 70 if
    it was 0). ``command``: how to start a worker (default: this interpreter's ``-m ingest serve``)."""
    directory = Path(tempfile.mkdtemp(prefix="ingest-workers-"))  # mode 0700: counters of this replica only
    command = command or [sys.executable, "-m", "ingest", "serve"]
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            for index in range(count):
                env = worker_env(dict(os.environ), client_id, index, count, directory)
                procs.append(subprocess.Popen(command, env=env))
        except OSError:  # a worker could not start: the ones that did must not outlive the supervisor
            forward(signal.SIGTERM, None)
            _reap(procs)
            raise
        log.info("ingest: %d workers started (pids %s)", count, ", ".join(str(p.pid) for p in procs))
        status = _wait(procs, lambda: stopping)
        if status is not None:  # a worker exited on its own: stop the replica, its supervisor restarts it
            forward(signal.SIGTERM, None)
        _reap(procs)
        return status if status is not None else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(directory, ignore_errors=True)


def _wait(procs: list[subprocess.Popen[bytes]], stopping: Callable[[], bool]) -> int | None:
    """Until every worker has exited (stopping) or one exits on its own: then its status (70 for 0)."""
    while True:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            return None
        for index, proc in enumerate(procs):
            if proc.pid == pid:
                proc.returncode = os.waitstatus_to_exitcode(raw)
                if not stopping():
                    code = proc.returncode
                    sys.stderr.write(
                        f"ingest: worker {index} (pid {pid}) exited with status {code}; stopping the other workers\n"
                    )
                    return code if code > 0 else EXIT_FATAL
        if all(p.returncode is not None for p in procs):
            return None


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        if proc.returncode is not None:
            continue
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            sys.stderr.write(f"ingest: worker pid {proc.pid} did not stop within {STOP_GRACE_S:.0f} s; killing it\n")
            proc.kill()
            proc.wait()


class Reporter:
    """A headless worker's counters, written every :data:`REPORT_S` seconds (atomically) for worker 0."""

    def __init__(self, role: WorkerRole, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._role = role
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-report", daemon=True)

    def start(self) -> None:
        self.write()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.write()  # the last counters, after the consumer stopped

    def write(self) -> None:
        path = self._role.report_file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"at": time.time(), "pid": os.getpid(), "stats": self._snapshot()}))
        tmp.replace(path)

    def _run(self) -> None:
        while not self._stop.wait(REPORT_S):
            try:
                self.write()
            except OSError as exc:  # the supervisor's directory is gone: it is stopping us
                log.warning("worker %d: cannot write its counters: %s", self._role.index, exc)


_SUMMED = ("inflight", "store_errors", "parked", "stale_redeliveries", "sparkplug_rebirths")
_COUNTED = ("rejections", "rows_by_region", "decisions")


class GroupStatus:
    """Worker 0's view of the replica: its own status plus the counters the other workers wrote. A worker whose
    counters are missing (starting) or older than :data:`STALE_S` makes the replica unhealthy, named in
    ``problem``."""

    def __init__(self, role: WorkerRole, local: Any, clock: Callable[[], float] = time.time) -> None:
        self._role = role
        self._local = local  # ingest.runtime.PipelineStatus of this process
        self._clock = clock
        self._started = clock()

    def _others(self) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        out: list[tuple[int, dict[str, Any] | None, str | None]] = []
        now = self._clock()
        for index in range(1, self._role.count):
            try:
                report = json.loads(self._role.report_file(index).read_text())
            except (OSError, ValueError):
                late = now - self._started > STALE_S
                out.append((index, None, f"worker {index} has not reported" if late else f"worker {index} starting"))
                continue
            age = now - float(report["at"])
            problem = f"worker {index} (pid {report['pid']}) silent for {age:.0f} s" if age > STALE_S else None
            out.append((index, report, problem))
        return out

    def snapshot(self) -> dict[str, Any]:
        merged: dict[str, Any] = dict(self._local.snapshot())
        merged["messages"] = dict(merged["messages"])
        for key in _COUNTED:
            merged[key] = dict(merged[key])
        workers = [
            {
                "worker": 0,
                "pid": os.getpid(),
                "healthy": merged["healthy"],
                "messages": dict(merged["messages"]),
                "inflight": merged["inflight"],
            }
        ]
        problems = [f"worker 0: {merged['problem']}"] if merged.get("problem") else []
        for index, report, problem in self._others():
            if report is None:
                workers.append({"worker": index, "pid": None, "healthy": False, "messages": None, "inflight": None})
                problems.append(problem or f"worker {index} has not reported")
                continue
            stats = report["stats"]
            for key, value in stats["messages"].items():
                merged["messages"][key] = merged["messages"].get(key, 0) + value
            for key in _COUNTED:
                total = Counter(merged[key])
                total.update(stats[key])
                merged[key] = dict(total)
            for key in _SUMMED:
                merged[key] = merged.get(key, 0) + stats.get(key, 0)
            if stats.get("last_commit_at") and (
                merged["last_commit_at"] is None or stats["last_commit_at"] > merged["last_commit_at"]
            ):
                merged["last_commit_at"] = stats["last_commit_at"]  # ISO 8601 UTC: compared as text
            merged["broker_connected"] = merged["broker_connected"] and stats["broker_connected"]
            merged["down_stores"] = sorted(set(merged["down_stores"]) | set(stats["down_stores"]))
            for key in ("last_error", "subscription_error"):
                merged[key] = merged.get(key) or stats.get(key)
            healthy = bool(stats["healthy"]) and problem is None
            if stats.get("problem"):
                problems.append(f"worker {index}: {stats['problem']}")
            if problem:
                problems.append(problem)
            workers.append(
                {
                    "worker": index,
                    "pid": report["pid"],
                    "healthy": healthy,
                    "messages": stats["messages"],
                    "inflight": stats["inflight"],
                }
            )
        merged["problem"] = "; ".join(problems) or None
        merged["healthy"] = (
            all(w["healthy"] for w in workers) and merged["broker_connected"] and not merged["down_stores"]
        )
        merged["workers"] = workers
        return merged

    def healthy(self) -> bool:
        return bool(self.snapshot()["healthy"])
