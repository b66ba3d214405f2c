"""What a running agent shows of itself: one :class:`AgentSnapshot`, taken by :meth:`Agent.snapshot`.

The status file (:mod:`edge_agent.status`) and the Prometheus metrics (:mod:`edge_agent.metrics`) read a
snapshot, not the agent: they depend on this module only (no import cycle with :mod:`edge_agent.agent`),
and a test can hand them any snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from edge_agent.outbox import QueueSnapshot
from edge_agent.publisher import LatencySnapshot
from edge_agent.runner import SourceHealth

__all__ = ["AgentSnapshot", "DeviceStats"]


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """Per-device counters of one run (``last_seq`` is the last number handed out, ever)."""

    device_id: str
    batches_built: int
    batches_published: int
    readings_published: int
    batches_acked: int
    readings_acked: int
    batches_republished: int
    batches_rejected: int  # refused by the broker (PUBACK failure)
    batches_dropped: int  # evicted from a full queue (drop_oldest)
    batches_refused: int  # refused by a full queue (reject_new)
    readings_dropped: int  # readings of dropped and refused batches
    batches_unrouted: int  # PUBACK "no matching subscribers": kept and sent again
    last_seq: int | None
    source_errors: int
    last_source_error: str | None
    batches_unauthorized: int = 0  # PUBACK "not authorized" (broker ACL): kept and sent again


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """The agent's state at one moment: its identity, the broker connection, the queue, every source and
    device. Broker fields are those of the publisher (none before :meth:`Agent.run` created it:
    ``has_publisher`` False, no latency)."""

    gateway_id: str
    site_id: str
    queue_kind: str  # the configured queue kind (config ``queue.kind``)
    status_interval_s: float
    broker_host: str
    broker_port: int
    started_at: datetime
    running: bool
    has_publisher: bool
    connected: bool
    connected_since: float | None  # epoch seconds
    connects: int
    last_error: str | None  # the broker connection's
    last_ack_at: float | None  # epoch seconds of the last PUBACK of a batch
    latency: LatencySnapshot | None  # publish latencies (None without a publisher)
    queue: QueueSnapshot | None  # None while the queue is not open
    queue_error: Exception | None  # why the queue could not be read (then ``queue`` is None)
    sources: dict[str, SourceHealth]
    devices: dict[str, DeviceStats]
