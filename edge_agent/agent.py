"""The agent: sources -> batcher -> pseudonymization -> (sequence + durable queue) -> publisher.

Each source runs on a thread of its own (:mod:`edge_agent.runner`) and hands its readings to the
agent's loop through a queue. The loop cuts batches (by count and latency), pseudonymizes the
fields declared personal, and stores each batch in the queue together with the device's next
sequence number, in one SQLite transaction (:class:`edge_agent.diskqueue.DiskQueue`). The
publisher's network thread publishes the queued batches (QoS 1, FIFO) and deletes each one when
the broker acknowledges it. A status thread rewrites ``state_dir/status.json`` for
``edge-agent status``; with ``metrics.enabled`` an HTTP thread serves Prometheus metrics
(:mod:`edge_agent.metrics`).
"""

from __future__ import annotations

import gzip
import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge_agent.batcher import Batcher, ReadyBatch
from edge_agent.config import AgentConfig
from edge_agent.diskqueue import DiskQueue
from edge_agent.errors import AgentError, ConfigError, PublishError, SourceError, StateError
from edge_agent.outbox import BatchQueue, EnqueueResult, MemoryQueue, QueueSnapshot
from edge_agent.privacy import Pseudonymizer
from edge_agent.publisher import DeviceCounts, Publisher
from edge_agent.ratelimit import TokenBucket
from edge_agent.runner import SourceHealth, SourceRunner
from edge_agent.snapshot import AgentSnapshot, DeviceStats
from edge_agent.sources import Source, create_source
from edge_agent.status import StatusWriter, status_document
from wire import Batch, DataTopic, OriginClaim, Reading, encode_batch

if TYPE_CHECKING:
    from edge_agent.metrics import MetricsServer

__all__ = ["Agent", "AgentSnapshot", "DeviceStats"]

log = logging.getLogger(__name__)


class Agent:
    """Runs the sources of one gateway and publishes their batches."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        sources: Sequence[Source] | None = None,
        batch_queue: BatchQueue | None = None,
        tick_s: float = 0.2,
        source_retry_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """Build and ``init()`` the sources (those of ``config`` unless ``sources`` is given).

        The queue (``config.queue``) is opened by :meth:`run`, unless ``batch_queue`` is given; either
        way :meth:`run` closes it when it returns.
        """
        self.config = config
        self._sources = list(sources) if sources is not None else [create_source(s) for s in config.sources]
        for source in self._sources:
            try:
                source.init()
            except AgentError:
                raise
            except Exception as exc:
                raise SourceError(source.device_id, f"init failed: {exc}") from None
        self.devices = [s.device_id for s in self._sources]
        self._topics = {d: str(DataTopic(site_id=config.site_id, device_id=d)) for d in self.devices}
        self._origin = OriginClaim(site_id=config.site_id, country=config.country)
        self._pseudonymizers = self._privacy()
        self._given_queue = batch_queue
        self._store: BatchQueue | None = None
        self._tick_s = tick_s
        self._queue: queue.Queue[tuple[str, list[Reading]]] = queue.Queue()
        self._runners = {
            s.device_id: SourceRunner(s, self._queue, retry_min_s=source_retry_s[0], retry_max_s=source_retry_s[1])
            for s in self._sources
        }
        self._batcher = Batcher(config.batch.max_readings, config.batch.max_latency_ms / 1000.0)
        self._built = dict.fromkeys(self.devices, 0)
        self._last_seq: dict[str, int | None] = dict.fromkeys(self.devices)
        self._publisher: Publisher | None = None
        self._metrics: MetricsServer | None = None
        self._limit: int | None = None
        self._ran = False
        self._store_error_logged_at = 0.0
        self.started_at = datetime.now(UTC)
        self.running = False

    def _privacy(self) -> dict[str, Pseudonymizer]:
        index = {s.device_id: i for i, s in enumerate(self.config.sources)}
        result: dict[str, Pseudonymizer] = {}
        for device in self.devices:
            if device in index:
                fields, keys = self.config.privacy_of(index[device])
            else:  # a source handed in directly: the site's rules apply
                fields, keys = list(self.config.privacy.pseudonymize), self.config.privacy
            try:
                pseudonymizer = Pseudonymizer.from_settings(fields, keys)
            except ValueError as exc:
                raise ConfigError(str(exc), field="privacy") from None
            if pseudonymizer is not None:
                result[device] = pseudonymizer
                log.info(
                    "device %s: pseudonymizing %s with key %s",
                    device,
                    sorted(pseudonymizer.fields),
                    pseudonymizer.key_id,
                    extra={"device_id": device, "fields": sorted(pseudonymizer.fields), "key_id": pseudonymizer.key_id},
                )
        return result

    # --- observation ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._publisher is not None and self._publisher.connected

    @property
    def last_error(self) -> str | None:
        return self._publisher.last_error if self._publisher is not None else None

    @property
    def publisher(self) -> Publisher | None:
        return self._publisher

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` while the metrics endpoint is served, else None."""
        return self._metrics.url if self._metrics is not None else None

    def stats(self) -> dict[str, DeviceStats]:
        """Per-device counts: batches and readings published and acknowledged, last seq, source errors."""
        counts = self._publisher.counts() if self._publisher is not None else {}
        result: dict[str, DeviceStats] = {}
        for device in self.devices:
            c = counts.get(device, DeviceCounts())
            runner = self._runners[device]
            result[device] = DeviceStats(
                device_id=device,
                batches_built=self._built[device],
                batches_published=c.batches_published,
                readings_published=c.readings_published,
                batches_acked=c.batches_acked,
                readings_acked=c.readings_acked,
                batches_republished=c.batches_republished,
                batches_rejected=c.batches_rejected,
                batches_dropped=c.batches_dropped,
                batches_refused=c.batches_refused,
                readings_dropped=c.readings_dropped,
                batches_unrouted=c.batches_unrouted,
                last_seq=self._last_seq[device],
                source_errors=runner.errors,
                last_source_error=runner.last_error,
                batches_unauthorized=c.batches_unauthorized,
            )
        return result

    def sources_health(self) -> dict[str, SourceHealth]:
        return {device: runner.health() for device, runner in self._runners.items()}

    def queue_snapshot(self) -> QueueSnapshot | None:
        return self._store.snapshot() if self._store is not None else None

    def snapshot(self) -> AgentSnapshot:
        """The agent's state now, for the status file and the metrics (which read nothing else of the agent).

        A queue that cannot be read right now is no error here: ``queue_error`` says why (the metrics leave
        the queue out of that scrape, the status file is not rewritten that time)."""
        cfg = self.config
        publisher = self._publisher
        queue_error: Exception | None = None
        try:
            snapshot = self.queue_snapshot()
        except Exception as exc:
            snapshot, queue_error = None, exc
        return AgentSnapshot(
            gateway_id=cfg.gateway_id,
            site_id=cfg.site_id,
            queue_kind=cfg.queue.kind,
            status_interval_s=cfg.status_interval_s,
            broker_host=cfg.broker.host,
            broker_port=cfg.broker.port,
            started_at=self.started_at,
            running=self.running,
            has_publisher=publisher is not None,
            connected=self.connected,
            connected_since=publisher.connected_since if publisher is not None else None,
            connects=publisher.connects if publisher is not None else 0,
            last_error=self.last_error,
            last_ack_at=publisher.last_ack_at if publisher is not None else None,
            latency=publisher.latency() if publisher is not None else None,
            queue=snapshot,
            queue_error=queue_error,
            sources=self.sources_health(),
            devices=self.stats(),
        )

    def status(self) -> dict[str, Any]:
        """What ``edge-agent status`` shows (also written to ``state_dir/status.json``)."""
        return status_document(self.snapshot())

    # --- running ----------------------------------------------------------------------------
    def _open_queue(self) -> BatchQueue:
        if self._given_queue is not None:
            return self._given_queue
        q = self.config.queue
        if q.kind == "memory":
            return MemoryQueue(
                self.config.state_dir, max_batches=q.max_batches, max_bytes=int(q.max_bytes), when_full=q.when_full
            )
        return DiskQueue(
            self.config.state_dir, max_batches=q.max_batches, max_bytes=int(q.max_bytes), when_full=q.when_full
        )

    def run(
        self,
        stop: threading.Event | None = None,
        max_batches_per_device: int | None = None,
        *,
        ack_timeout_s: float = 30.0,
        drain_timeout_s: float = 5.0,
    ) -> dict[str, DeviceStats]:
        """Run until ``stop`` is set, or until each device has published ``max_batches_per_device``.

        With a limit, every device publishes exactly that many batches; the agent then waits up to
        ``ack_timeout_s`` for all acknowledgements (raising :class:`PublishError` if some are
        missing or rejected). On ``stop`` it flushes what is buffered and waits up to
        ``drain_timeout_s``; what is still queued then stays in the disk queue for the next start.
        Either way it publishes the retained offline status ("shutdown") before disconnecting.
        """
        if self._ran:
            raise AgentError("an Agent runs once; create a new one")
        if max_batches_per_device is not None and max_batches_per_device < 1:
            raise ValueError("max_batches_per_device must be >= 1")
        self._ran = True
        self._limit = max_batches_per_device
        stop = stop or threading.Event()
        cfg = self.config
        self._store = self._open_queue()
        try:
            for device in self.devices:
                self._last_seq[device] = self._store.last_seq(device)
            rate = cfg.publish.max_messages_per_s
            self._publisher = Publisher(
                cfg.broker,
                gateway_id=cfg.gateway_id,
                site_id=cfg.site_id,
                devices=self.devices,
                outbox=self._store,
                rate_limit=TokenBucket(rate, cfg.publish.burst) if rate > 0 else None,
            )
            self._start_metrics()  # e.g. the port is taken: AgentError before anything is published
        except BaseException:
            self._store.close()
            raise
        backlog = len(self._store)
        kind = getattr(self._store, "kind", "custom")
        log.info(
            "agent %s (site %s): %d source(s), broker %s:%d, %s queue%s",
            cfg.gateway_id,
            cfg.site_id,
            len(self._sources),
            cfg.broker.host,
            cfg.broker.port,
            kind,
            f" with {backlog} batch(es) to replay" if backlog else "",
            extra={
                "gateway_id": cfg.gateway_id,
                "site_id": cfg.site_id,
                "devices": self.devices,
                "broker": f"{cfg.broker.host}:{cfg.broker.port}",
                "queue": kind,
                "queue_batches": backlog,
            },
        )
        status = StatusWriter(self.snapshot, cfg.state_dir, cfg.status_interval_s)
        self.running = True
        try:
            self._publisher.start()
            status.start()
            for runner in self._runners.values():
                runner.start()
            self._loop(stop)
            for runner in self._runners.values():
                runner.stop()
            limited = max_batches_per_device is not None and not stop.is_set()
            if not limited:
                self._drain_queue()
                for ready in self._batcher.flush():
                    self._emit(ready)
            self._await_acks(ack_timeout_s if limited else drain_timeout_s, strict=limited)
        finally:
            for runner in self._runners.values():
                runner.stop(timeout_s=1.0)
            self._publisher.close("shutdown")
            self.running = False
            status.stop()
            if self._metrics is not None:
                self._metrics.stop()
                self._metrics = None
            self._store.close()
        return self.stats()

    def _start_metrics(self) -> None:
        settings = self.config.metrics
        if not settings.enabled:
            return
        from edge_agent.metrics import MetricsServer  # prometheus_client is imported only when metrics are on

        server = MetricsServer(self.snapshot, settings.host, settings.port)
        server.start()
        self._metrics = server

    def _done(self) -> bool:
        return self._limit is not None and all(n >= self._limit for n in self._built.values())

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self._done():
            wait = self._batcher.next_due_in()
            timeout = self._tick_s if wait is None else min(self._tick_s, wait)
            try:
                device, readings = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                self._accept(device, readings)
                self._drain_queue()
            for ready in self._batcher.due():
                self._emit(ready)

    def _drain_queue(self) -> None:
        while True:
            try:
                device, readings = self._queue.get_nowait()
            except queue.Empty:
                return
            self._accept(device, readings)

    def _accept(self, device: str, readings: list[Reading]) -> None:
        if self._limit is not None and self._built[device] >= self._limit:
            return  # this device is done; late readings are not published
        for ready in self._batcher.add(device, readings):
            self._emit(ready)

    def _emit(self, ready: ReadyBatch) -> None:
        device = ready.device_id
        if self._limit is not None and self._built[device] >= self._limit:
            return
        assert self._store is not None and self._publisher is not None
        readings = ready.readings
        transforms: dict[str, str] = {}
        key_id = None
        pseudonymizer = self._pseudonymizers.get(device)
        if pseudonymizer is not None:
            readings, transforms = pseudonymizer.apply(readings)
            key_id = pseudonymizer.key_id if transforms else None
        publish = self.config.publish
        sent_at = datetime.now(UTC)

        def build(seq: int) -> bytes:
            batch = Batch(
                device_id=device,
                seq=seq,
                sent_at=sent_at,
                origin=self._origin,
                key_id=key_id,
                edge_transforms=transforms,
                readings=readings,
            )
            payload = encode_batch(batch)
            if publish.compression == "gzip":
                payload = gzip.compress(payload, compresslevel=publish.compression_level, mtime=0)
            return payload

        try:
            result = self._store.enqueue(
                device,
                self._topics[device],
                build,
                readings=len(readings),
                first_ts=readings[0].ts.timestamp(),
                encoding="gzip" if publish.compression == "gzip" else None,
            )
        except StateError as exc:  # e.g. the disk is full: lose this batch, not the agent
            now = time.monotonic()
            if now - self._store_error_logged_at > 10:
                self._store_error_logged_at = now
                log.error(
                    "%s: %d reading(s) of %s lost",
                    exc,
                    len(readings),
                    device,
                    extra={"device_id": device, "readings_lost": len(readings), "error": str(exc)},
                )
            result = EnqueueResult(None, 0)
        self._publisher.note_enqueued(result, device, len(readings))
        self._built[device] += 1
        if result.seq:  # 0: nothing was stored, not even the number
            self._last_seq[device] = result.seq
        if self._limit is not None and self._built[device] >= self._limit:
            self._runners[device].request_stop()
            self._batcher.discard(device)

    def _await_acks(self, timeout_s: float, *, strict: bool) -> None:
        assert self._publisher is not None and self._store is not None
        acked = self._publisher.wait_until_acked(timeout_s)
        left = len(self._store)
        stats = self.stats()
        if not left and not any(s.batches_rejected for s in stats.values()):
            return
        unacked = {
            d: n
            for d, s in stats.items()
            if (n := s.batches_built - s.batches_acked - s.batches_rejected - s.batches_dropped - s.batches_refused) > 0
        }
        rejected = sum(s.batches_rejected for s in stats.values())
        dropped = sum(s.batches_dropped + s.batches_refused for s in stats.values())
        reason = f"{left + rejected} batch(es) not acknowledged"
        if not acked:
            reason += f" within {timeout_s:.1f} s"
        if rejected or dropped:
            reason += f" ({rejected} rejected by the broker, {dropped} dropped from a full queue)"
        if self._publisher.last_error:
            reason += f" (last error: {self._publisher.last_error})"
        if strict:
            raise PublishError(reason, unacked=unacked)
        kept = " (kept in the disk queue for the next start)" if getattr(self._store, "kind", "") == "disk" else ""
        log.warning("%s%s", reason, kept, extra={"unacked": unacked, "queue_batches": left})
