"""Prometheus metrics of a running agent: ``http://host:port/metrics`` (config ``metrics``).

Nothing is counted twice: :class:`AgentCollector` reads the agent's own counters on every scrape, from
one :class:`~edge_agent.snapshot.AgentSnapshot` (:meth:`Agent.snapshot`: the device counters, the sources'
health, the queue, the publisher's connection state and latency histogram), the same numbers as
``status.json`` and the periodic log line. The collector is registered on a
:class:`~prometheus_client.CollectorRegistry` of its own (never the process-wide default one, so two
agents in one process, e.g. in tests, do not clash), together with the standard ``process_*`` and
``python_info`` collectors, and served by prometheus_client's small threaded HTTP server (no web
framework on the gateway).

Counters restart from 0 with the process, as Prometheus expects (``rate()`` handles resets).
See the metric list in ``edge_agent/README.md`` ("Metrics and logs").
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from edge_agent.errors import AgentError
from edge_agent.snapshot import AgentSnapshot

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["AgentCollector", "MetricsServer", "check_listen", "metrics_url"]

log = logging.getLogger(__name__)

PREFIX = "edge_agent_"
_go_float: Callable[[float], str] = floatToGoString  # a bucket bound as Prometheus writes it (untyped upstream)

# (DeviceStats field, metric name without prefix and _total, help): per-device counters.
DEVICE_COUNTERS = (
    ("batches_built", "batches_built", "Batches cut by the batcher and handed to the queue (stored or refused)."),
    ("batches_published", "batches_published", "Batches published to the broker (first attempt)."),
    ("batches_acked", "batches_acked", "Batches acknowledged by the broker (PUBACK success)."),
    ("batches_republished", "batches_republished", "Batches published again after a lost connection."),
    ("batches_rejected", "batches_rejected", "Batches the broker refused (PUBACK failure reason code)."),
    ("batches_unrouted", "batches_unrouted", "PUBACKs 'no matching subscribers' (batch kept and sent again)."),
    (
        "batches_unauthorized",
        "batches_unauthorized",
        "PUBACKs 'not authorized': the broker ACL refused the topic (batch kept and sent again).",
    ),
    ("readings_published", "readings_published", "Readings in batches published (first attempt)."),
    ("readings_acked", "readings_acked", "Readings in batches acknowledged by the broker."),
    ("readings_dropped", "readings_dropped", "Readings lost with dropped batches (full queue, store failure)."),
)
SOURCE_STATES = ("starting", "ok", "failing", "stopped")


def metrics_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("residency-telemetry")
    except Exception:  # not installed as a distribution (run from a checkout)
        return "unknown"


class AgentCollector:
    """Builds the ``edge_agent_*`` metric families from the agent's state at scrape time: the snapshot that
    ``snapshot`` (:meth:`edge_agent.agent.Agent.snapshot`) takes."""

    def __init__(self, snapshot: Callable[[], AgentSnapshot]) -> None:
        self.snapshot = snapshot
        self._version = _version()
        self._queue_failed = False

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        info = GaugeMetricFamily(
            PREFIX + "info",
            "The agent (always 1): gateway, site, queue kind and version.",
            labels=["gateway_id", "site_id", "queue", "version"],
        )
        info.add_metric([snap.gateway_id, snap.site_id, snap.queue_kind, self._version], 1)
        yield info
        yield GaugeMetricFamily(
            PREFIX + "start_time_seconds", "When the agent started (epoch seconds).", value=snap.started_at.timestamp()
        )
        yield from self._sources(snap)
        yield from self._devices(snap)
        yield from self._queue(snap)
        yield from self._broker(snap)

    def _sources(self, snap: AgentSnapshot) -> Iterator[Metric]:
        labels = ["device_id", "source"]
        sampled = CounterMetricFamily(
            PREFIX + "readings_sampled", "Readings read from the source (before batching).", labels=labels
        )
        errors = CounterMetricFamily(
            PREFIX + "source_errors", "Failed start/read attempts of the source (each retried).", labels=labels
        )
        healthy = GaugeMetricFamily(
            PREFIX + "source_healthy", "1 while the source reads successfully (state ok), else 0.", labels=labels
        )
        state = GaugeMetricFamily(
            PREFIX + "source_state",
            "The source's state: 1 for the current one of starting, ok, failing, stopped.",
            labels=[*labels, "state"],
        )
        failures = GaugeMetricFamily(
            PREFIX + "source_consecutive_failures", "Failures since the last successful read.", labels=labels
        )
        last = GaugeMetricFamily(
            PREFIX + "source_last_reading_timestamp_seconds",
            "When readings last arrived from the source (epoch seconds; 0: never).",
            labels=labels,
        )
        for device, h in snap.sources.items():
            key = [device, h.kind]
            sampled.add_metric(key, h.readings)
            errors.add_metric(key, h.errors)
            healthy.add_metric(key, 1 if h.state == "ok" else 0)
            for name in SOURCE_STATES:
                state.add_metric([*key, name], 1 if h.state == name else 0)
            failures.add_metric(key, h.consecutive_failures)
            last.add_metric(key, h.last_reading_at or 0)
        yield from (sampled, errors, healthy, state, failures, last)

    def _devices(self, snap: AgentSnapshot) -> Iterator[Metric]:
        stats = snap.devices
        for field, name, doc in DEVICE_COUNTERS:
            family = CounterMetricFamily(PREFIX + name, doc, labels=["device_id"])
            for device, s in stats.items():
                family.add_metric([device], getattr(s, field))
            yield family
        dropped = CounterMetricFamily(
            PREFIX + "batches_dropped",
            "Batches lost before publishing: reason=evicted (drop_oldest made room), "
            "reason=refused (reject_new, or the queue could not store it).",
            labels=["device_id", "reason"],
        )
        last_seq = GaugeMetricFamily(
            PREFIX + "last_seq", "Last sequence number handed out for the device (ever).", labels=["device_id"]
        )
        for device, s in stats.items():
            dropped.add_metric([device, "evicted"], s.batches_dropped)
            dropped.add_metric([device, "refused"], s.batches_refused)
            if s.last_seq is not None:
                last_seq.add_metric([device], s.last_seq)
        yield dropped
        yield last_seq

    def _queue(self, snap: AgentSnapshot) -> Iterator[Metric]:
        exc = snap.queue_error
        if exc is not None:  # a scrape must not fail because the queue cannot be read right now
            if not self._queue_failed:
                log.warning("metrics: cannot read the queue: %s", exc, extra={"error": str(exc)})
            self._queue_failed = True
            return
        self._queue_failed = False
        snapshot = snap.queue
        if snapshot is None:  # not running (yet)
            return
        age = 0.0
        if snapshot.oldest_reading_ts is not None:
            age = max(0.0, time.time() - snapshot.oldest_reading_ts)
        gauges = (
            ("queue_batches", "Batches in the queue, not yet acknowledged (unsent and in flight).", snapshot.batches),
            ("queue_readings", "Readings in the queued batches.", snapshot.readings),
            ("queue_bytes", "Payload bytes of the queued batches.", snapshot.bytes),
            ("queue_oldest_reading_age_seconds", "Age of the oldest unacknowledged reading (0: queue empty).", age),
            ("queue_max_batches", "Bound on queued batches (queue.max_batches).", snapshot.max_batches),
            ("queue_max_bytes", "Bound on queued payload bytes (queue.max_bytes).", snapshot.max_bytes),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(PREFIX + name, doc, value=value)

    def _broker(self, snap: AgentSnapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            PREFIX + "broker_connected", "1 while connected to the broker, else 0.", value=1 if snap.connected else 0
        )
        yield CounterMetricFamily(
            PREFIX + "broker_reconnects",
            "Connections to the broker established again after the first one.",
            value=max(0, snap.connects - 1),
        )
        yield GaugeMetricFamily(
            PREFIX + "last_publish_timestamp_seconds",
            "When the broker last acknowledged a batch (epoch seconds; 0: never).",
            value=snap.last_ack_at or 0,
        )
        latency = snap.latency
        if latency is None:  # no publisher (yet)
            return
        bounds = [_go_float(b) for b in latency.bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            PREFIX + "publish_latency_seconds",
            "Time from storing a batch in the queue to its PUBACK (includes time queued during outages).",
            buckets=list(zip(bounds, latency.cumulative, strict=True)),
            sum_value=latency.sum_s,
        )


class MetricsServer:
    """Serves the agent's metrics (from the snapshots ``snapshot`` takes) on ``host:port`` from a daemon thread;
    :meth:`stop` frees the port."""

    def __init__(self, snapshot: Callable[[], AgentSnapshot], host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)  # the agent's own: not prometheus_client.REGISTRY
        self.registry.register(AgentCollector(snapshot))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return metrics_url(self.host, self.port)

    def start(self) -> None:
        """Listen now (raises :class:`AgentError` naming the address if it cannot), then serve in the background."""
        try:
            self._httpd, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise AgentError(f"metrics: cannot listen on {self.url}: {reason}") from None
        log.info("metrics on %s", self.url, extra={"host": self.host, "port": self.port})

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        try:
            httpd.shutdown()  # ends serve_forever (polls every 0.5 s)
            httpd.server_close()  # frees the port (shutdown alone does not)
        except Exception as exc:  # stopping must not hide why the agent stops
            log.warning("metrics: stopping the server failed: %s", exc)
        if thread is not None:
            thread.join(2.0)


def check_listen(host: str, port: int) -> str:
    """Bind ``host:port`` briefly as the metrics server would (``edge-agent check``); raise AgentError if it cannot."""
    url = metrics_url(host, port)
    try:
        infos: list[Any] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _type, _proto, _name, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
            sock.bind(address)
    except OSError as exc:
        raise AgentError(f"cannot listen on {url}: {exc.strerror or exc}") from None
    return f"{url} is free (served while `edge-agent run` runs)"
