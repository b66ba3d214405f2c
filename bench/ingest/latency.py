"""Publish→row-visible latency at a steady load (goal G6).

A paho QoS 1 publisher sends the 100-reading messages at a fixed rate; at publish time the sentinel
timestamps of each payload (``sent_at`` and every reading's ``ts``) are replaced by the publish time.
Two measures:

- **poll** (primary): a poller asks every region database every ``poll_s`` which published
  messages are visible yet (an index lookup on the primary key prefix ``(device_id, seq)``); a message is
  visible in a region at the start of the first query that sees it. Latency = that - publish time: an
  upper bound, by at most one poll period plus the query time.
- **sql**: ``ingested_at - ts`` per reading (``percentile_cont`` in SQL). ``ingested_at`` defaults to
  ``now()``, which is the *start* of the writing transaction, not its commit: this misses the COPY, the
  merge and the commit of that transaction (and of the regions written before it), so it is a lower
  bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from bench.ingest.publish import Login, connect_client
from bench.ingest.workload import Message


@dataclass
class _Pending:
    t_pub: float
    regions: set[str]


@dataclass
class LatencyResult:
    rate: float
    messages: int
    poll_s: float
    poll_latencies: list[float] = field(default_factory=list)  # every (message, region)
    by_region: dict[str, list[float]] = field(default_factory=dict)  # the same, per region
    sql: dict[str, float] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (what percentile_cont does)."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class VisibilityPoller(threading.Thread):
    """Asks every region store, every ``poll_s``, which of the pending messages it shows.

    The poller shares the machine with what it measures, so its query is kept cheap: every reading of
    a message carries the publish time as ``ts``, and the query bounds ``ts`` by the pending messages'
    publish times (scalar parameters, so PostgreSQL plans against the one or two daily partitions of
    ``readings`` that can hold them instead of all of them)."""

    _SQL = (
        "SELECT p.d, p.s FROM unnest(%s::text[], %s::bigint[]) AS p(d, s) CROSS JOIN LATERAL"
        " (SELECT 1 FROM readings r WHERE r.device_id = p.d AND r.seq = p.s"
        " AND r.ts >= to_timestamp(%s) AND r.ts <= to_timestamp(%s) LIMIT 1) AS seen"
    )

    def __init__(self, region_dsns: dict[str, str], poll_s: float) -> None:
        super().__init__(name="visibility-poller", daemon=True)
        self.dsns = region_dsns
        self.poll_s = poll_s
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.latencies: list[float] = []
        self.by_region: dict[str, list[float]] = {r: [] for r in region_dsns}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def expect(self, device_id: str, seq: int, t_pub: float, regions: set[str]) -> None:
        with self.lock:
            self.pending[(device_id, seq)] = _Pending(t_pub, set(regions))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)

    def run(self) -> None:
        try:
            conns = {r: psycopg.connect(dsn, autocommit=True) for r, dsn in self.dsns.items()}
            try:
                while not self.stop_event.is_set():
                    t_cycle = time.monotonic()
                    for region, conn in conns.items():
                        with self.lock:
                            keys = [k for k, p in self.pending.items() if region in p.regions]
                            times = [self.pending[k].t_pub for k in keys]
                        if not keys:
                            continue
                        t_query = time.time()
                        found = conn.execute(
                            self._SQL, ([k[0] for k in keys], [k[1] for k in keys], min(times) - 1.0, max(times) + 1.0)
                        ).fetchall()
                        with self.lock:
                            for d, s in found:
                                p = self.pending.get((d, s))
                                if p is None or region not in p.regions:
                                    continue
                                self.latencies.append(t_query - p.t_pub)
                                self.by_region[region].append(t_query - p.t_pub)
                                p.regions.discard(region)
                                if not p.regions:
                                    del self.pending[(d, s)]
                    time.sleep(max(0.0, self.poll_s - (time.monotonic() - t_cycle)))
            finally:
                for c in conns.values():
                    c.close()
        except BaseException as exc:  # reported by the caller
            self.error = exc


def run_latency(
    port: int,
    region_dsns: dict[str, str],
    templates: Sequence[Message],
    regions_of: dict[str, set[str]],
    sentinel: bytes,
    rate: float,
    poll_s: float = 0.02,
    on_count: Callable[[int], None] | None = None,
    drain_timeout: float = 60.0,
    login: Login | None = None,
) -> LatencyResult:
    """Publish ``templates`` at ``rate`` msg/s, stamping them; wait until every one is visible in every region of
    ``regions_of[device]`` (each region's store in ``region_dsns``, which may be different servers or cells).
    ``login``: the identity to publish as (a residency cell's gateway)."""
    poller = VisibilityPoller(region_dsns, poll_s)
    poller.start()
    failed: list[str] = []
    try:
        client = connect_client(
            port,
            f"bench-latency-{time.monotonic_ns()}",
            inflight=1000,
            login=login,
            on_publish=lambda _c, _u, mid, reason, _p: (
                failed.append(f"message {mid}: {reason}") if getattr(reason, "is_failure", False) else None
            ),
        )
    except RuntimeError as exc:
        poller.stop_event.set()
        poller.join(5)
        raise RuntimeError(f"latency publisher: {exc}") from None
    try:
        interval = 1.0 / rate
        t_start = time.monotonic() + 0.05
        for k, m in enumerate(templates):
            delay = t_start + k * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = datetime.now(UTC)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            poller.expect(m.device_id, m.seq, now.timestamp(), regions_of[m.device_id])
            client.publish(m.topic, m.payload.replace(sentinel, stamp), qos=1)
            if on_count is not None:
                on_count(k + 1)
        deadline = time.monotonic() + drain_timeout
        while poller.outstanding() and time.monotonic() < deadline and poller.error is None and not failed:
            time.sleep(0.05)
        if failed:
            raise RuntimeError(f"the broker on :{port} refused {len(failed)} of the paced messages: {failed[0]}")
        if poller.error is not None:
            raise RuntimeError(f"visibility poller failed: {poller.error}")
        if poller.outstanding():
            raise RuntimeError(f"{poller.outstanding()} messages still not visible after {drain_timeout}s")
    finally:
        poller.stop_event.set()
        poller.join(5)
        client.disconnect()
        client.loop_stop()
    return LatencyResult(
        rate, len(templates), poll_s, list(poller.latencies), {r: list(v) for r, v in poller.by_region.items()}
    )


def sql_latency(region_dsns: dict[str, str], min_seq: int) -> dict[str, float]:
    """p50/p99/max of ingested_at - ts over every reading (one value per reading and region)."""
    values: list[float] = []
    for dsn in region_dsns.values():
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM min(ingested_at - ts))::float8 FROM readings WHERE seq >= %s"
                " GROUP BY device_id, seq, idx",
                (min_seq,),
            ).fetchall()
            values.extend(r[0] for r in rows)
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
        "readings": float(len(values)),
    }


def flush_histograms(api_url: str) -> dict[str, tuple[float, float, float]]:
    """The ingest's own account of its flushes so far (Prometheus histograms ``ingest_flush_stage_seconds`` and
    ``ingest_flush_messages`` of /api/v1/metrics): per stage (sum, count, count under 100 ms); ``messages``:
    (messages, flushes, 0)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{api_url}/api/v1/metrics", timeout=10).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    under: dict[str, float] = {}
    out: dict[str, tuple[float, float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ingest_flush_stage_seconds":
            for s in family.samples:
                stage = s.labels.get("stage", "")
                if s.name.endswith("_sum"):
                    sums[stage] = s.value
                elif s.name.endswith("_count"):
                    counts[stage] = s.value
                elif s.name.endswith("_bucket") and s.labels.get("le") == "0.1":
                    under[stage] = s.value
        elif family.name == "ingest_flush_messages":
            out["messages"] = (
                sum(s.value for s in family.samples if s.name.endswith("_sum")),
                sum(s.value for s in family.samples if s.name.endswith("_count")),
                0.0,
            )
    for stage, n in counts.items():
        out[stage] = (sums.get(stage, 0.0), n, under.get(stage, n))
    return out


def flush_stages(
    api_url: str,
    since: dict[str, tuple[float, float, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Per flush stage of the ingest at ``api_url``: the mean and the share of flushes over 100 ms; the mean number
    of messages per flush. ``since``: an earlier ``flush_histograms`` of the same ingest, to count only the flushes
    after it."""
    now = flush_histograms(api_url)
    out: dict[str, dict[str, float]] = {}
    for stage, (total, n, under) in now.items():
        before = (since or {}).get(stage, (0.0, 0.0, 0.0))
        total, n, under = total - before[0], n - before[1], under - before[2]
        if not n:
            continue
        if stage == "messages":
            out["messages"] = {"mean": total / n}
        else:
            out[stage] = {"mean_ms": total / n * 1000, "over_100ms": 1 - under / n}
    return out
