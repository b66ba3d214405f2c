"""Counters of the ingest pipeline, exposed to the API (/stats) and to Prometheus (/metrics)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge

_MESSAGES = PromCounter("ingest_messages", "MQTT messages handled, by outcome", ["outcome"])
_REJECTIONS = PromCounter("ingest_rejections", "Messages or parts rejected, by reason code", ["code"])
_ROWS = PromCounter("ingest_rows", "Rows committed to region stores", ["region"])
_DECISIONS = PromCounter("ingest_decisions", "Policy decisions logged, by outcome", ["outcome"])
_INFLIGHT = Gauge("ingest_inflight_messages", "Messages received and not yet acknowledged")
_STORE_ERRORS = PromCounter("ingest_store_errors", "Failed commit attempts, by store", ["store"])


class PipelineStats:
    """Thread-safe counters; ``snapshot()`` is what GET /api/v1/stats returns."""

    def __init__(self) -> None:
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
        self.store_healthy = True
        self.policy_revision = ""

    def message_received(self) -> None:
        with self._lock:
            self.received += 1
            self.inflight += 1
        _INFLIGHT.inc()

    def committed(
        self, *, acked: int, stored: int, rejected: int, rows: dict[str, int], decisions: dict[str, int],
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
            self.store_healthy = True
            self.last_error = None
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
            self.store_healthy = False
            self.last_error = error
        _STORE_ERRORS.labels(store).inc()

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected

    def healthy(self) -> bool:
        with self._lock:
            return self.broker_connected and self.store_healthy

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
                "healthy": self.broker_connected and self.store_healthy,
                "policy_revision": self.policy_revision,
            }
