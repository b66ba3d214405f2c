"""ingest.workers without processes: the environment a worker gets, and worker 0's view of the replica."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.workers import STALE_S, GroupStatus, Reporter, WorkerRole, worker_env


class _Local:
    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def snapshot(self) -> dict[str, Any]:
        return self.snap

    def healthy(self) -> bool:
        return bool(self.snap["healthy"])


def _snap(stored: int, *, healthy: bool = True, last: str | None = None, **over: Any) -> dict[str, Any]:
    return {
        "messages": {"received": stored, "stored": stored, "rejected": 1},
        "rejections": {"malformed": 1},
        "rows_by_region": {"eu-central": stored * 7},
        "decisions": {"stored": stored},
        "inflight": 2,
        "last_commit_at": last,
        "store_errors": 0,
        "last_error": None,
        "broker_connected": True,
        "subscription_error": None,
        "problem": None,
        "down_stores": [],
        "parked": 0,
        "stale_redeliveries": 0,
        "sparkplug_rebirths": 0,
        "healthy": healthy,
        "policy_revision": "sha256:r",
        **over,
    }


def _write(role: WorkerRole, index: int, snap: dict[str, Any], at: float) -> None:
    role.report_file(index).write_text(json.dumps({"at": at, "pid": 1000 + index, "stats": snap}))


def test_worker_env_keeps_the_replica_session_for_worker_0(tmp_path: Path) -> None:
    base = {"INGEST_WORKERS": "4", "OTHER": "x"}
    zero = worker_env(base, "ingest-1", 0, 3, tmp_path)
    two = worker_env(base, "ingest-1", 2, 3, tmp_path)
    assert "INGEST_MQTT_CLIENT_ID" not in zero and two["INGEST_MQTT_CLIENT_ID"] == "ingest-1-w2"
    assert zero["INGEST_WORKERS"] == two["INGEST_WORKERS"] == "1" and two["OTHER"] == "x"
    assert (two["INGEST_WORKER_INDEX"], two["INGEST_WORKER_COUNT"], two["INGEST_WORKER_DIR"]) == (
        "2",
        "3",
        str(tmp_path),
    )


def test_worker_0_sums_every_workers_counters(tmp_path: Path) -> None:
    role = WorkerRole(0, 3, tmp_path)
    now = 1_000_000.0
    _write(role, 1, _snap(5, last="2026-12-05T01:00:02+00:00", rejections={"bad_status": 2}), now)
    _write(role, 2, _snap(7, last="2026-12-05T01:00:01+00:00", down_stores=["us-east"]), now)
    group = GroupStatus(role, _Local(_snap(10, last="2026-12-05T01:00:00+00:00")), clock=lambda: now)
    snap = group.snapshot()
    assert snap["messages"] == {"received": 22, "stored": 22, "rejected": 3}
    assert snap["rejections"] == {"malformed": 2, "bad_status": 2}
    assert snap["rows_by_region"] == {"eu-central": 154} and snap["inflight"] == 6
    assert snap["last_commit_at"] == "2026-12-05T01:00:02+00:00"
    assert snap["down_stores"] == ["us-east"] and snap["healthy"] is False  # a store down for one worker
    assert [w["messages"]["stored"] for w in snap["workers"]] == [10, 5, 7]
    assert [w["pid"] for w in snap["workers"]][1:] == [1001, 1002]


def test_a_silent_or_missing_worker_makes_the_replica_unhealthy(tmp_path: Path) -> None:
    role = WorkerRole(0, 3, tmp_path)
    now = [1_000_000.0]
    group = GroupStatus(role, _Local(_snap(1)), clock=lambda: now[0])
    snap = group.snapshot()  # just started: the others have not reported yet
    assert snap["healthy"] is False and snap["problem"] == "worker 1 starting; worker 2 starting"
    _write(role, 1, _snap(1), now[0])
    now[0] += STALE_S + 1  # worker 1 went silent; worker 2 never reported
    snap = group.snapshot()
    assert snap["healthy"] is False and group.healthy() is False
    assert "worker 1 (pid 1001) silent for" in snap["problem"] and "worker 2 has not reported" in snap["problem"]
    _write(role, 1, _snap(1), now[0])
    _write(role, 2, _snap(1, healthy=False, problem="thread ingest-flush died: boom"), now[0])
    snap = group.snapshot()
    assert snap["healthy"] is False and snap["problem"] == "worker 2: thread ingest-flush died: boom"
    _write(role, 2, _snap(1), now[0])
    assert group.healthy() is True


def test_reporter_writes_the_counters_atomically(tmp_path: Path) -> None:
    role = WorkerRole(1, 2, tmp_path)
    calls = [0]

    def snap() -> dict[str, Any]:
        calls[0] += 1
        return _snap(calls[0])

    reporter = Reporter(role, snap)
    reporter.start()
    reporter.stop()
    report = json.loads(role.report_file().read_text())
    assert report["stats"]["messages"]["stored"] == calls[0] >= 2  # the last write comes after the stop
    assert not list(tmp_path.glob("*.tmp"))
