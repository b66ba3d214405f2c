"""``ingest serve --workers N``: one replica, N consumer processes in its shared-subscription group. The work is
split, every reading is stored exactly once, worker 0's API answers for the whole replica, SIGTERM stops every
worker, and a worker that dies stops the replica with status 70 (so its supervisor restarts it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack import MosquittoServer
from devstack.ports import free_port
from ingest.registry import Registry
from tests.integration.ingest_harness import (
    REGISTRY,
    Replica,
    all_home_readings_stored,
    assert_home_regions_hold_exactly,
    query,
    wait_until,
)
from tests.integration.load import AgentLoad

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.integration
def test_two_workers_split_the_work_and_answer_as_one_replica(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    replica = Replica("ingest-workers", mqtt_broker, control, regions, tmp_path, INGEST_WORKERS="2").start()
    try:
        wait_until(
            lambda: len(replica.stats()["workers"]) == 2 and replica.stats()["healthy"],
            60,
            "both workers connected and reporting",
        )
        acked = (
            AgentLoad(mqtt_broker, registry, ["de-munich", "us-detroit", "cn-shenzhen"], tmp_path, batches=60)
            .start()
            .join(300)
        )
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 120, "every reading stored")
        # worker 1's counters reach worker 0's API within a report period; the agents' last statuses may be in flight

        def settled() -> bool:
            now = replica.stats()
            return bool(now["messages"]["stored"] >= 60 * len(acked) and now["inflight"] == 0)

        wait_until(settled, 30, "the replica's stats: every batch stored, nothing in flight")
        stats = replica.stats()
        assert stats["messages"]["stored"] == 60 * len(acked)
        shares = [w["messages"]["stored"] for w in stats["workers"]]
        assert all(s > 0 for s in shares) and sum(shares) == 60 * len(acked), shares
        assert sum(stats["rows_by_region"].values()) > 0 and stats["healthy"] is True
        assert_home_regions_hold_exactly(acked, regions, registry)
        assert query(control, "SELECT count(*) FROM sequence_gaps WHERE closed_at IS NULL") == [(0,)]
        health = httpx.get(replica.url("/api/v1/health"), headers=replica.headers, timeout=10)
        assert health.status_code == 200, health.text
        pids = [w["pid"] for w in stats["workers"]]
    finally:
        replica.stop()
    assert replica.proc is not None and replica.proc.returncode == 0
    wait_until(lambda: not any(_alive(p) for p in pids), 30, "every worker stopped with the replica")


_SUPERVISOR = """
import sys
from ingest.workers import supervise
sys.exit(supervise(2, "ingest-dying-worker", command=[sys.executable, "-c", {child!r}]))
"""
_CHILD = """
import os, sys
from ingest.pipeline import consumer

if os.environ["INGEST_WORKER_INDEX"] == "1":
    def broken(self):
        raise RuntimeError("injected bug in worker 1")

    consumer.Consumer._flush_loop = broken  # fault injection: worker 1's flush thread dies at once
from ingest.cli import main
sys.argv = ["ingest", "serve"]
main()
"""


@pytest.mark.integration
def test_a_dead_worker_stops_the_replica_with_status_70(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    control, regions = databases
    env = {
        **os.environ,
        "INGEST_MQTT_PORT": str(mqtt_broker.port),
        "INGEST_CONTROL_DSN": control,
        "INGEST_REGION_DSNS": json.dumps(regions),
        "INGEST_REGISTRY_FILE": REGISTRY,
        "INGEST_API_PORT": str(free_port()),
        "INGEST_MQTT_CLIENT_ID": "ingest-dying-worker",
    }
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SUPERVISOR.format(child=_CHILD)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert proc.wait(120) == 70, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "thread ingest-flush died: RuntimeError: injected bug in worker 1" in text
    assert "worker 1 (pid" in text and "exited with status 70; stopping the other workers" in text
    assert "ingest stopped" in text  # worker 0 stopped gracefully (nothing acknowledged after the stop)


@pytest.mark.integration
def test_the_supervisor_forwards_sigterm_and_exits_0(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    control, regions = databases
    replica = Replica("ingest-sigterm", mqtt_broker, control, regions, tmp_path, INGEST_WORKERS="3").start()
    try:
        wait_until(
            lambda: len(replica.stats()["workers"]) == 3 and replica.stats()["healthy"], 60, "three workers reporting"
        )
        pids = [w["pid"] for w in replica.stats()["workers"]]
        assert len(set(pids)) == 3 and all(pids)
    finally:
        started = time.monotonic()
        replica.stop()
    assert replica.proc is not None and replica.proc.returncode == 0, replica.log.read_text()[-2000:]
    assert time.monotonic() - started < 30
    wait_until(lambda: not any(_alive(p) for p in pids), 30, "every worker stopped")
