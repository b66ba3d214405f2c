"""Counters of the ingest pipeline, exposed to the API (/stats) and to Prometheus (/metrics)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram

from ingest.pipeline.watchdog import Watchdog

_MESSAGES = PromCounter("ingest_messages", "MQTT messages handled, by outcome", ["outcome"])
_REJECTIONS = PromCounter("ingest_rejections", "Messages or parts rejected, by reason code", ["code"])
_ROWS = PromCounter("ingest_rows", "Rows committed to region stores", ["region"])
_DECISIONS = PromCounter("ingest_decisions", "Policy decisions logged, by outcome", ["outcome"])
_INFLIGHT = Gauge("ingest_inflight_messages", "Messages received and not yet acknowledged")
_STORE_ERRORS = PromCounter("ingest_store_errors", "Failed commit attempts, by store", ["store"])
_FLUSH_STAGE = Histogram(
    "ingest_flush_stage_seconds",
    "Time of each stage of a flush: queued (first message's wait before the flush "
    "began), route, control (decision log commit, in the control thread), regions (hand-over to the last region "
    "commit), both overlapping the next batch's route; wait (what the flush thread still waited for the control "
    "and region commits), ack",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_FLUSH_MESSAGES = Histogram(
    "ingest_flush_messages",
    "Messages per flush",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
_PARKED = Gauge("ingest_parked_messages", "Messages waiting for an unavailable region store")
_PIPELINE_OK = Gauge(
    "ingest_pipeline_ok", "1 while no worker thread died and the pipeline is not stalled (docs/message-isolation.md)"
)


class PipelineStats:
    """Thread-safe counters; ``snapshot()`` is what GET /api/v1/stats returns."""

    def __init__(self, watchdog: Watchdog | None = None) -> None:
        self.watchdog = watchdog or Watchdog(stall_s=120.0)
        self._lock = threading.Lock()
        self.received = 0
        self.stored = 0
        self.rejected = 0
        self.rejections: Counter[str] = Counter()
        self.rows_by_region: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.inflight = 0
        self.store_errors = 0
        self.last_commit_at: datetime | None = None
        self.last_error: str | None = None
        self.broker_connected = False
        self.subscription_error: str | None = None  # the broker refused a subscription (SUBACK failure)
        self.down_stores: set[str] = set()
        self.parked = 0
        self.stale_redeliveries = 0
        self.sparkplug_rebirths = 0
        self.policy_revision = ""

    def message_received(self) -> None:
        with self._lock:
            self.received += 1
            self.inflight += 1
        _INFLIGHT.inc()

    def committed(
        self,
        *,
        acked: int,
        stored: int,
        rejected: int,
        rows: dict[str, int],
        decisions: dict[str, int],
        rejections: dict[str, int],
    ) -> None:
        with self._lock:
            self.stored += stored
            self.rejected += rejected
            self.inflight -= acked
            self.rows_by_region.update(rows)
            self.decisions.update(decisions)
            self.rejections.update(rejections)
            self.last_commit_at = datetime.now(UTC)
        _INFLIGHT.dec(acked)
        _MESSAGES.labels("stored").inc(stored)
        _MESSAGES.labels("rejected").inc(rejected)
        for region, n in rows.items():
            _ROWS.labels(region).inc(n)
        for outcome, n in decisions.items():
            _DECISIONS.labels(outcome).inc(n)
        for code, n in rejections.items():
            _REJECTIONS.labels(code).inc(n)

    def store_failed(self, store: str, error: str) -> None:
        with self._lock:
            self.store_errors += 1
            self.down_stores.add(store)
            self.last_error = error
        _STORE_ERRORS.labels(store).inc()

    def store_ok(self, store: str) -> None:
        with self._lock:
            self.down_stores.discard(store)
            if not self.down_stores:
                self.last_error = None

    def rows_written(self, region: str, n: int) -> None:
        with self._lock:
            self.rows_by_region[region] += n
        _ROWS.labels(region).inc(n)

    def set_parked(self, parked: int, down_regions: list[str]) -> None:
        with self._lock:
            self.parked = parked
            self.down_stores = {s for s in self.down_stores if s == "control"} | set(down_regions)
        _PARKED.set(parked)

    def unparked(self, n: int) -> None:
        """Parked messages written and acknowledged."""
        with self._lock:
            self.inflight -= n
        _INFLIGHT.dec(n)

    def dropped_stale(self, n: int) -> None:
        """Messages from a previous broker connection, dropped unacknowledged (the broker redelivers them)."""
        with self._lock:
            self.inflight -= n
            self.stale_redeliveries += n
        _INFLIGHT.dec(n)

    def flush_timed(self, messages: int, stages: dict[str, float]) -> None:
        _FLUSH_MESSAGES.observe(messages)
        for stage, seconds in stages.items():
            _FLUSH_STAGE.labels(stage).observe(seconds)

    def rebirth_requested(self) -> None:
        with self._lock:
            self.sparkplug_rebirths += 1

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected

    def set_subscription_error(self, error: str | None) -> None:
        with self._lock:
            self.subscription_error = error

    def _problem(self) -> str | None:
        problem = self.watchdog.problem(self.inflight)
        _PIPELINE_OK.set(0 if problem else 1)
        return problem

    def _healthy(self) -> bool:
        return (
            self.broker_connected
            and not self.down_stores
            and self.subscription_error is None
            and self._problem() is None
        )

    def healthy(self) -> bool:
        with self._lock:
            return self._healthy()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "messages": {"received": self.received, "stored": self.stored, "rejected": self.rejected},
                "rejections": dict(self.rejections),
                "rows_by_region": dict(self.rows_by_region),
                "decisions": dict(self.decisions),
                "inflight": self.inflight,
                "last_commit_at": self.last_commit_at.isoformat() if self.last_commit_at else None,
                "store_errors": self.store_errors,
                "last_error": self.last_error,
                "broker_connected": self.broker_connected,
                "subscription_error": self.subscription_error,
                "problem": self._problem(),
                "down_stores": sorted(self.down_stores),
                "parked": self.parked,
                "stale_redeliveries": self.stale_redeliveries,
                "sparkplug_rebirths": self.sparkplug_rebirths,
                "healthy": self._healthy(),
                "policy_revision": self.policy_revision,
            }
