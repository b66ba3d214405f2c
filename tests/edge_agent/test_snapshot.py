"""The status file and the metrics read an agent snapshot (edge_agent.snapshot), never the agent itself."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.metrics import AgentCollector
from edge_agent.outbox import QueueSnapshot
from edge_agent.publisher import LatencySnapshot
from edge_agent.runner import SourceHealth
from edge_agent.snapshot import AgentSnapshot, DeviceStats
from edge_agent.status import status_document

from .edge_support import REPO

QUEUE = QueueSnapshot(
    kind="disk",
    batches=3,
    readings=30,
    bytes=900,
    oldest_reading_ts=None,
    max_batches=100,
    max_bytes=10_000,
    when_full="drop_oldest",
    evicted_batches=0,
    evicted_readings=0,
    refused_batches=0,
    refused_readings=0,
    last_full_at=None,
)
SNAPSHOT = AgentSnapshot(
    gateway_id="gw-01",
    site_id="de-munich",
    queue_kind="disk",
    status_interval_s=2.0,
    broker_host="127.0.0.1",
    broker_port=1883,
    started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    running=True,
    has_publisher=True,
    connected=True,
    connected_since=1_767_323_045.0,
    connects=2,
    last_error=None,
    last_ack_at=1_767_323_050.0,
    latency=LatencySnapshot(bounds=(0.1, 1.0), cumulative=(4, 5, 5), sum_s=0.7),
    queue=QUEUE,
    queue_error=None,
    sources={"dev-1": SourceHealth("dev-1", "simulated", "ok", 10, 1_767_323_049.0, 0, 0, None, None, None)},
    devices={"dev-1": DeviceStats("dev-1", 5, 5, 50, 5, 50, 0, 0, 0, 0, 0, 0, 5, 0, None)},
)


def test_the_status_document_is_the_snapshot() -> None:
    doc = status_document(SNAPSHOT)
    assert (doc["gateway_id"], doc["site_id"], doc["state"]) == ("gw-01", "de-munich", "running")
    assert doc["interval_s"] == 2.0
    assert doc["started_at"] == "2026-01-02T03:04:05.000+00:00"
    assert doc["broker"] == {
        "host": "127.0.0.1",
        "port": 1883,
        "connected": True,
        "connected_since": "2026-01-02T03:04:05.000+00:00",
        "connects": 2,
        "last_error": None,
    }
    assert doc["last_publish_at"] == "2026-01-02T03:04:10.000+00:00"
    assert doc["queue"]["batches"] == 3 and doc["devices"]["dev-1"]["last_seq"] == 5
    assert doc["sources"]["dev-1"]["state"] == "ok"


def test_a_queue_that_cannot_be_read_stops_the_status_write_but_not_a_scrape() -> None:
    broken = replace(SNAPSHOT, queue=None, queue_error=OSError("database is locked"))
    with pytest.raises(OSError, match="database is locked"):
        status_document(broken)
    names = _scrape(broken)
    assert "edge_agent_queue_batches" not in names and names["edge_agent_broker_connected"] == 1.0


def test_the_metrics_are_the_snapshot() -> None:
    names = _scrape(SNAPSHOT)
    assert names["edge_agent_queue_batches"] == 3.0 and names["edge_agent_broker_reconnects_total"] == 1.0
    assert names["edge_agent_batches_acked_total"] == 5.0 and names["edge_agent_publish_latency_seconds_count"] == 5.0
    assert "edge_agent_publish_latency_seconds_count" not in _scrape(
        replace(SNAPSHOT, has_publisher=False, latency=None)
    )


@pytest.mark.parametrize("module", ["status", "metrics", "snapshot"])
def test_status_and_metrics_do_not_import_the_agent(module: str) -> None:
    """No import cycle: the status and metrics modules know the snapshot, not edge_agent.agent (not even for
    type checking)."""
    tree = ast.parse((REPO / "edge_agent" / f"{module}.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "edge_agent.agent" not in imported and "edge_agent" not in imported


def _scrape(snapshot: AgentSnapshot) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(lambda: snapshot))
    text = generate_latest(registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels or set(s.labels) <= {"device_id", "source"}
    }
