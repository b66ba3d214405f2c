"""The flush pipeline (regions write batch n while batch n+1 is routed and logged) acknowledges every
message exactly once and in arrival order, across many small overlapping batches."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import MosquittoServer
from ingest.registry import Registry
from tests.integration.ingest_harness import (
    all_home_readings_stored,
    assert_home_regions_hold_exactly,
    batch_payload,
    publisher,
    running_ingest,
    wait_until,
)

READING = {"spindle_speed_rpm": 1200.0, "power_kw": 5.5, "operator_badge": "B-7"}


@pytest.mark.integration
def test_acks_follow_arrival_order_across_overlapping_batches(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry
) -> None:
    control, regions = databases
    devices = [d for d, dev in sorted(registry.devices.items()) if dev.profile == "cnc_mill"]
    # batches of at most 3 messages, closed as soon as the queue is empty: many flushes, overlapping
    with running_ingest(mqtt_broker, control, regions, flush_max_messages=3, flush_idle_ms=0, flush_interval_ms=20) as (
        service,
        _api,
    ):
        consumer = service.consumer
        arrivals: list[int] = []
        acks: list[int] = []
        put, ack = consumer._queue.put, consumer._client.ack

        def record_put(item: Any, *args: Any, **kwargs: Any) -> None:
            arrivals.append(item.mid)
            put(item, *args, **kwargs)

        def record_ack(mid: int, qos: int) -> Any:
            acks.append(mid)
            return ack(mid, qos)

        consumer._queue.put = record_put  # type: ignore[method-assign]  # spies on this instance
        consumer._client.ack = record_ack  # type: ignore[method-assign]  # spies on this instance
        pub = publisher(mqtt_broker, "pipeline-publisher")
        try:
            for seq in range(1, 21):
                for device in devices:
                    site = registry.devices[device].site
                    pub.publish(f"tele/v1/{site}/{device}", batch_payload(device, seq, [READING, READING]), qos=1)
            acked = dict.fromkeys(devices, 20 * 2)
            wait_until(lambda: all_home_readings_stored(acked, regions, registry), 60, "every reading stored")
            wait_until(lambda: len(acks) == len(arrivals) == 20 * len(devices), 30, "every message acknowledged")
        finally:
            pub.loop_stop()
            pub.disconnect()
        assert acks == arrivals  # once each, in arrival order
        assert service.stats.snapshot()["inflight"] == 0
        assert_home_regions_hold_exactly(acked, regions, registry)
