"""The agent: sources -> batcher -> sequence numbers -> outbox -> publisher.

Each source runs on a thread of its own (:mod:`edge_agent.runner`) and hands its readings to the
agent's loop through a queue. The loop cuts batches (by count and latency), numbers each with the
device's persisted sequence, encodes it with the shared wire format and submits it to the
publisher, whose network thread publishes it (QoS 1) and counts the acknowledgements.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from edge_agent.batcher import Batcher, ReadyBatch
from edge_agent.config import AgentConfig
from edge_agent.errors import AgentError, PublishError, SourceError
from edge_agent.outbox import MemoryOutbox, Outbox, OutboxItem
from edge_agent.publisher import DeviceCounts, Publisher
from edge_agent.runner import SourceRunner
from edge_agent.sequence import SequenceStore
from edge_agent.sources import Source, create_source
from wire import Batch, DataTopic, OriginClaim, Reading, encode_batch

__all__ = ["Agent", "DeviceStats"]

log = logging.getLogger(__name__)


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
    batches_rejected: int
    batches_dropped: int
    last_seq: int | None
    source_errors: int
    last_source_error: str | None


class Agent:
    """Runs the sources of one gateway and publishes their batches."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        sources: Sequence[Source] | None = None,
        outbox: Outbox | None = None,
        tick_s: float = 0.05,
        source_retry_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """Build and ``init()`` the sources (those of ``config`` unless ``sources`` is given)."""
        self.config = config
        self._sources = list(sources) if sources is not None else [create_source(s) for s in config.sources]
        for source in self._sources:
            try:
                source.init()
            except AgentError:
                raise
            except Exception as exc:
                raise SourceError(source.device_id, f"init failed: {exc}") from exc
        self.devices = [s.device_id for s in self._sources]
        self._topics = {d: str(DataTopic(site_id=config.site_id, device_id=d)) for d in self.devices}
        self._origin = OriginClaim(site_id=config.site_id, country=config.country)
        self._outbox = outbox or MemoryOutbox(config.outbox.max_batches)
        self._tick_s = tick_s
        self._queue: queue.Queue[tuple[str, list[Reading]]] = queue.Queue()
        self._runners = {
            s.device_id: SourceRunner(s, self._queue, retry_min_s=source_retry_s[0], retry_max_s=source_retry_s[1])
            for s in self._sources
        }
        self._batcher = Batcher(config.batch.max_readings, config.batch.max_latency_ms / 1000.0)
        self._built = dict.fromkeys(self.devices, 0)
        self._last_seq: dict[str, int | None] = dict.fromkeys(self.devices)
        self._publisher = Publisher(
            config.broker,
            gateway_id=config.gateway_id,
            site_id=config.site_id,
            devices=self.devices,
            outbox=self._outbox,
        )
        self._sequence: SequenceStore | None = None
        self._limit: int | None = None
        self._ran = False

    # --- observation ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._publisher.connected

    @property
    def last_error(self) -> str | None:
        return self._publisher.last_error

    def stats(self) -> dict[str, DeviceStats]:
        """Per-device counts: batches and readings published and acknowledged, last seq, source errors."""
        counts = self._publisher.counts()
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
                last_seq=self._last_seq[device],
                source_errors=runner.errors,
                last_source_error=runner.last_error,
            )
        return result

    # --- running ----------------------------------------------------------------------------
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
        ``drain_timeout_s``. Either way it publishes the retained offline status ("shutdown")
        before disconnecting.
        """
        if self._ran:
            raise AgentError("an Agent runs once; create a new one")
        if max_batches_per_device is not None and max_batches_per_device < 1:
            raise ValueError("max_batches_per_device must be >= 1")
        self._ran = True
        self._limit = max_batches_per_device
        stop = stop or threading.Event()
        cfg = self.config
        self._sequence = SequenceStore(cfg.state_dir)
        for device in self.devices:
            self._last_seq[device] = self._sequence.last(device)
        log.info(
            "agent %s (site %s): %d source(s), broker %s:%d",
            cfg.gateway_id,
            cfg.site_id,
            len(self._sources),
            cfg.broker.host,
            cfg.broker.port,
        )
        try:
            self._publisher.start()
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
            self._sequence.close()
        return self.stats()

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
        assert self._sequence is not None
        seq = self._sequence.next(device)
        batch = Batch(
            device_id=device, seq=seq, sent_at=datetime.now(UTC), origin=self._origin, readings=ready.readings
        )
        self._publisher.submit(OutboxItem(device, seq, self._topics[device], encode_batch(batch), len(ready.readings)))
        self._built[device] += 1
        self._last_seq[device] = seq
        if self._limit is not None and self._built[device] >= self._limit:
            self._runners[device].request_stop()
            self._batcher.discard(device)

    def _await_acks(self, timeout_s: float, *, strict: bool) -> None:
        acked = self._publisher.wait_until_acked(timeout_s)
        stats = self.stats()
        unacked = {d: s.batches_built - s.batches_acked for d, s in stats.items() if s.batches_built > s.batches_acked}
        if not unacked:
            return
        rejected = sum(s.batches_rejected for s in stats.values())
        dropped = sum(s.batches_dropped for s in stats.values())
        reason = f"{sum(unacked.values())} batch(es) not acknowledged"
        if not acked:
            reason += f" within {timeout_s:.1f} s"
        if rejected or dropped:
            reason += f" ({rejected} rejected by the broker, {dropped} dropped from a full outbox)"
        if self._publisher.last_error:
            reason += f" (last error: {self._publisher.last_error})"
        if strict:
            raise PublishError(reason, unacked=unacked)
        log.warning("%s", reason)
