"""Scale-out and crashes: replicas on one shared subscription split the work with no coordination but
the broker and the databases, and `kill -9` of a replica under load, five times, loses nothing and
stores nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devstack import MosquittoServer
from ingest.registry import Registry
from tests.integration.ingest_harness import (
    Replica,
    all_home_readings_stored,
    assert_home_regions_hold_exactly,
    query,
    wait_until,
)
from tests.integration.load import AgentLoad


@pytest.mark.integration
def test_three_replicas_split_the_work(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    replicas = [Replica(f"ingest-{i}", mqtt_broker, control, regions, tmp_path).start() for i in range(3)]
    try:
        acked = (
            AgentLoad(mqtt_broker, registry, ["de-munich", "us-detroit", "sg-jurong"], tmp_path, batches=60)
            .start()
            .join(300)
        )
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 120, "every reading stored")
        # A replica counts a message once all its regions committed, which may be just after the home rows show.
        wait_until(
            lambda: sum(r.stats()["messages"]["stored"] for r in replicas) >= 60 * len(acked),
            30,
            "every replica's stats caught up",
        )
        shares = [r.stats()["messages"]["stored"] for r in replicas]
        assert all(s > 0 for s in shares), f"every replica took a share: {shares}"
        assert_home_regions_hold_exactly(acked, regions, registry)
        # Batches of one device handled by different replicas still form one gap-free sequence.
        assert query(control, "SELECT count(*) FROM sequence_gaps WHERE closed_at IS NULL") == [(0,)]
    finally:
        for r in replicas:
            r.stop()


@pytest.mark.integration
def test_kill_9_of_a_replica_five_times_under_load(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    steady = Replica("ingest-steady", mqtt_broker, control, regions, tmp_path).start()
    victim = Replica("ingest-victim", mqtt_broker, control, regions, tmp_path).start()
    try:
        load = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen", "vn-hanoi"], tmp_path, batches=300).start()
        for _ in range(5):
            wait_until(lambda: victim.stats()["messages"]["received"] > 0, 30, "the victim took messages")
            time.sleep(1.0)
            victim.kill()  # SIGKILL: unacknowledged messages stay with the broker (persistent session)
            time.sleep(0.5)
            victim.start()  # same client id: the broker redelivers what was not acknowledged
        acked = load.join(300)
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 180, "every reading stored")
        assert_home_regions_hold_exactly(acked, regions, registry)
        # Each decision is logged once per (message, category, region), whatever the redeliveries.
        assert query(
            control,
            "SELECT count(*) FROM (SELECT device_id, seq, category, region FROM decisions "
            "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
        ) == [(0,)]
        batches = query(control, "SELECT sum(batches) FROM device_progress")[0][0]
        assert batches == 300 * len(acked)
    finally:
        steady.stop()
        victim.stop()
