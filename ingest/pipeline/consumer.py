"""The MQTT consumer: shared subscription, persistent session, acknowledgement after commit.

paho's network thread only queues messages (``on_message``, stamped with their arrival time). One
flush thread collects a batch and routes it (policy decisions); the batch's control records (decision
log, quarantine index, sequences) are committed by the control thread, its rows by each region's
writer (one connection and thread per region), all concurrently; each message whose every part is
committed is acknowledged, in arrival order. Two batches overlap: while batch n is being written, the
flush thread collects and routes batch n+1 and queues its control records behind batch n's; it then
waits for batch n's control and region commits, acknowledges batch n, and hands batch n+1's rows to
the regions. A region never has two writes in flight, control commits keep batch order, and batch n is
acknowledged before batch n+1. When no message is waiting, the flush thread finishes the batch in
flight first, so an idle ingest acknowledges at once.

The control and region commits of one batch are independent: each is idempotent (deterministic
decision ids, sequence rows, reading keys), so a crash between them leaves nothing that a redelivery
does not complete, and nothing twice.

A batch closes at the first of: ``flush_interval_ms`` after its first message *arrived* (time spent
queued behind the previous flush counts), ``flush_idle_ms`` without a new message, or the caps
``flush_max_messages`` / ``flush_max_bytes``. Under load the queue never runs dry and batches grow to
the caps (throughput); at low load a message waits about ``flush_idle_ms``, not the whole interval
(latency).

Faults:
- Control store down: nothing more is acknowledged; the control thread retries the batch's commit
  with backoff while the flush thread waits for it with at most one more batch routed. The broker
  keeps the messages; Receive Maximum bounds how many we hold (memory is bounded).
- One region store down: messages that need it are *parked* (only their payload is kept in memory)
  and retried; the other regions keep flowing and their messages are acknowledged. A parked message
  is acknowledged once its region is back, after later messages: the only case where acknowledgements
  leave arrival order (Mosquitto matches PUBACKs by packet id). Its data waits; it is never written
  to another region.
- Broker connection lost: messages received on the old connection are never acknowledged on the new
  one (packet ids are reused); the persistent session makes the broker redeliver them, and the
  idempotent stores ignore what was already written.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from ingest.config import IngestSettings
from ingest.errors import StoreUnavailableError
from ingest.pipeline.router import Routed, Router
from ingest.pipeline.stats import PipelineStats
from ingest.store.control import ControlWriter
from ingest.store.quarantine import QuarantineWriter
from ingest.store.region import RegionWriter
from wire import Status, data_subscription
from wire.topics import STATUS_PREFIX, status_subscription

log = logging.getLogger("ingest.consumer")


@dataclass(slots=True)
class _Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    epoch: int  # broker connection it arrived on
    arrived: float  # time.monotonic() when paho delivered it
    pending: set[str] = field(default_factory=set)  # regions still to write (parked messages)


@dataclass(slots=True)
class _InFlight:
    """A batch whose control records are committed and whose region writes run in the writer threads."""

    batch: list[_Inbound]
    routed: list[tuple[_Inbound, Routed]]
    users: dict[str, list[_Inbound]]  # region -> messages with rows or held payloads there
    rows: dict[str, int]  # region -> rows handed to its writer
    control: Future[float | None]  # seconds the control commit took; None: stopping before it committed
    futures: dict[str, Future[bool]]
    submitted: float  # time.monotonic() when the region writes were handed over
    stages: dict[str, float]  # seconds: queued, route
    finished: bool = False


class Consumer:
    def __init__(self, settings: IngestSettings, router: Router, stats: PipelineStats) -> None:
        self.settings = settings
        self.router = router
        self.stats = stats
        self._queue: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._regions = {name: RegionWriter(name, dsn) for name, dsn in settings.region_dsns.items()}
        self._quarantine = {name: QuarantineWriter(name, dsn) for name, dsn in settings.region_dsns.items()}
        self._control = ControlWriter(settings.control_dsn)
        self._parked: list[_Inbound] = []
        self._region_retry_at: dict[str, float] = {}
        self._region_delay: dict[str, float] = {}
        self._thread = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        # One thread commits the control records, in batch order, while the flush thread routes the next batch.
        self._control_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-control")
        # One worker per region: a flush writes its regions concurrently (each has its own connection).
        self._writers = ThreadPoolExecutor(max_workers=max(1, len(self._regions)), thread_name_prefix="ingest-region")
        self._client = self._make_client()

    # --- MQTT side (paho network thread) ---
    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.mqtt_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.settings.mqtt_username:
            password = self.settings.mqtt_password.get_secret_value() if self.settings.mqtt_password else None
            client.username_pw_set(self.settings.mqtt_username, password)
        if self.settings.mqtt_tls:
            client.tls_set(ca_certs=str(self.settings.mqtt_ca_file) if self.settings.mqtt_ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s:%s refused the connection: %s", self.settings.mqtt_host,
                      self.settings.mqtt_port, reason)
            return
        with self._epoch_lock:
            self._epoch += 1
        client.subscribe([(data_subscription(self.settings.share_group), SubscribeOptions(qos=1)),
                          (status_subscription(), SubscribeOptions(qos=1))])
        self.stats.set_connected(True)
        log.info("connected to %s:%s (session present: %s), subscribed to %s", self.settings.mqtt_host,
                 self.settings.mqtt_port, getattr(flags, "session_present", "?"),
                 data_subscription(self.settings.share_group))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[object], _p: object) -> None:
        """A refused subscription (e.g. the broker's ACL does not grant this account the share group) leaves
        the replica connected but idle: report it, and be unhealthy until a later SUBACK grants it."""
        filters = (data_subscription(self.settings.share_group), status_subscription())
        refused = [f"{topic}: {reason}" for topic, reason in zip(filters, reasons, strict=False)
                   if getattr(reason, "is_failure", False)]
        if refused:
            error = (f"broker {self.settings.mqtt_host}:{self.settings.mqtt_port} refused the subscription of "
                     f"{self.settings.mqtt_username or 'anonymous'} to " + "; ".join(refused))
            log.error("%s (check the broker ACL and INGEST_SHARE_GROUP)", error)
            self.stats.set_subscription_error(error)
        else:
            self.stats.set_subscription_error(None)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.stats.set_connected(False)
        if not self._stop.is_set():
            log.warning("disconnected from broker %s:%s (%s); reconnecting", self.settings.mqtt_host,
                        self.settings.mqtt_port, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.stats.message_received()
        self._queue.put(_Inbound(msg.mid, msg.qos, msg.topic, msg.payload, self._epoch, time.monotonic()))

    # --- lifecycle ---
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = self.settings.receive_maximum
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self._client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: commit and ack what was received, then disconnect (unacked messages stay at the broker)."""
        self._stop.set()
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._control_thread.shutdown(wait=True)
        self._writers.shutdown(wait=True)
        for writer in (*self._regions.values(), *self._quarantine.values()):
            writer.close()
        self._control.close()

    # --- flush thread ---
    def _collect(self) -> list[_Inbound]:
        batch: list[_Inbound] = []
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return batch
        batch.append(first)
        size = len(first.payload)
        settings = self.settings
        deadline = first.arrived + settings.flush_interval_ms / 1000
        idle = settings.flush_idle_ms / 1000
        while len(batch) < settings.flush_max_messages and size < settings.flush_max_bytes:
            try:
                item = self._queue.get_nowait()  # whatever is already queued joins without waiting
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or idle <= 0:
                    break
                try:
                    item = self._queue.get(timeout=min(idle, remaining))
                except queue.Empty:
                    break  # idle for flush_idle_ms, or the interval is over
            batch.append(item)
            size += len(item.payload)
            if item.arrived >= deadline:
                break
        return batch

    def _flush_loop(self) -> None:
        inflight: _InFlight | None = None
        while True:
            if inflight is not None and self._queue.empty():
                inflight = self._finish(inflight)  # nothing to overlap with: acknowledge now
            batch = self._collect()
            if self._parked:
                inflight = self._finish(inflight)  # the writers' connections are free for the retry
                self._retry_parked()
            if not batch:
                if self._stop.is_set():
                    self._finish(inflight)
                    return
                continue
            inflight = self._process(batch, inflight)

    def _process(self, batch: list[_Inbound], previous: _InFlight | None) -> _InFlight:
        """Route ``batch`` and queue its control commit while ``previous`` is being written; finish
        ``previous``; hand ``batch`` to the region writers. Returns the new batch in flight."""
        t0 = time.monotonic()
        routed: list[tuple[_Inbound, Routed]] = []
        statuses: list[Status] = []
        for item in batch:
            if item.topic.startswith(STATUS_PREFIX + "/"):
                try:
                    statuses.append(Status.model_validate_json(item.payload))
                except ValidationError as exc:
                    log.warning("ignoring invalid status on %s: %s", item.topic, exc.errors()[0]["msg"])
                continue
            routed.append((item, self.router.route(item.topic, item.payload, received=item.arrived)))
        t1 = time.monotonic()
        control = self._control_thread.submit(self._commit_control, [r for _, r in routed], statuses, len(batch))
        self._finish(previous)
        return self._submit_regions(batch, routed, control, {"queued": t0 - batch[0].arrived, "route": t1 - t0})

    def _submit_regions(self, batch: list[_Inbound], routed: list[tuple[_Inbound, Routed]],
                        control: Future[float | None], stages: dict[str, float]) -> _InFlight:
        """Hand each region its rows and held payloads (one job per region, in its writer thread)."""
        per_region: dict[str, list[tuple[object, ...]]] = {}
        held: dict[str, list[tuple[object, ...]]] = {}
        users: dict[str, list[_Inbound]] = {}
        for item, m in routed:
            for region, rows in m.rows.items():
                per_region.setdefault(region, []).extend(rows)
                users.setdefault(region, []).append(item)
            for r in m.rejections:
                if r.payload_region is not None and r.payload is not None:
                    held.setdefault(r.payload_region, []).append((r.quarantine_id, r.topic, r.payload))
                    users.setdefault(r.payload_region, []).append(item)
        futures = {
            region: self._writers.submit(self._write_region, region, per_region.get(region, []), held.get(region, []))
            for region in sorted(users) if not self._region_waiting(region)
        }
        rows = {region: len(per_region.get(region, [])) for region in users}
        return _InFlight(batch, routed, users, rows, control, futures, time.monotonic(), stages)

    def _finish(self, inflight: _InFlight | None) -> None:
        """Wait for a batch's control and region commits; acknowledge what is fully committed, park the rest
        (once). A batch whose control records were not committed (stopping) is not acknowledged at all."""
        if inflight is None or inflight.finished:
            return None
        inflight.finished = True
        t3 = time.monotonic()
        ok = {region: future.result() for region, future in inflight.futures.items()}
        control = inflight.control.result()
        t4 = time.monotonic()
        if control is None:
            return None  # stopping: nothing acknowledged, the broker redelivers the whole batch
        written: dict[str, int] = {}
        for region, items in inflight.users.items():
            if ok.get(region, False):  # a region still waiting to be retried was not submitted: not ok
                written[region] = inflight.rows[region]
            else:
                for item in items:
                    item.pending.add(region)
        batch, routed = inflight.batch, inflight.routed
        done = [item for item in batch if not item.pending]
        parked = [item for item in batch if item.pending]
        if parked:
            self._parked.extend(parked)
            log.warning("parked %d messages waiting for region(s) %s", len(parked),
                        sorted({r for item in parked for r in item.pending}))
        acked = self._ack(done)
        self.stats.flush_timed(len(batch), {**inflight.stages, "control": control, "regions": t4 - inflight.submitted,
                                            "wait": t4 - t3, "ack": time.monotonic() - t4})
        rejections: Counter[str] = Counter(r.code for _, m in routed for r in m.rejections)
        for _, m in routed:
            for r in m.rejections:
                log.warning("quarantined %s (device=%s seq=%s): %s: %s [%s]", r.topic, r.device_id, r.seq, r.code,
                            r.detail, f"held in {r.payload_region}" if r.payload_region else "metadata only")
        self.stats.committed(
            acked=acked,
            stored=sum(1 for _, m in routed if m.stored),
            rejected=sum(1 for _, m in routed if not m.stored),
            rows=written,
            decisions=dict(Counter(d.outcome for _, m in routed for d in m.decisions)),
            rejections=dict(rejections),
        )
        self.stats.set_parked(len(self._parked), self._down_regions())
        return None

    def _commit_control(self, routed: list[Routed], statuses: list[Status], size: int) -> float | None:
        """Commit the audit records (control thread), retrying until the control store answers.

        Returns the seconds it took (the stage ``control``), or None if stopping before it committed."""
        t0 = time.monotonic()
        batches: dict[str, list[tuple[int, int]]] = {}
        for m in routed:
            if m.device_id is not None and m.seq is not None:
                batches.setdefault(m.device_id, []).append((m.seq, m.readings))
        delay = 0.2
        while True:
            try:
                self._control.write(
                    decisions=[d for m in routed for d in m.decisions],
                    rejections=[r for m in routed for r in m.rejections],
                    batches=batches,
                    statuses=statuses,
                )
                self.stats.store_ok("control")
                return time.monotonic() - t0
            except StoreUnavailableError as exc:
                self.stats.store_failed(exc.store, str(exc))
                log.error("control store unavailable, holding %d messages unacknowledged: %s", size, exc)
                if self._stop.is_set():
                    return None
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 10.0)

    def _write_region(self, region: str, rows: list[tuple[object, ...]], held: list[tuple[object, ...]]) -> bool:
        try:
            writer = self._regions.get(region)
            if writer is None:
                raise StoreUnavailableError(region, "no DSN configured for this region (INGEST_REGION_DSNS)")
            writer.write(rows)
            self._quarantine[region].write(held)  # type: ignore[arg-type]
        except StoreUnavailableError as exc:
            self.stats.store_failed(exc.store, str(exc))
            delay = min(self._region_delay.get(region, 0.25) * 2, 10.0)
            self._region_delay[region] = delay
            self._region_retry_at[region] = time.monotonic() + delay * random.uniform(0.8, 1.2)
            log.error("region %s unavailable (retry in %.1fs): %s", region, delay, exc)
            return False
        self.stats.store_ok(region)
        if region in self._region_delay:
            log.info("region %s is back", region)
        self._region_delay.pop(region, None)
        self._region_retry_at.pop(region, None)
        return True

    def _region_waiting(self, region: str) -> bool:
        return time.monotonic() < self._region_retry_at.get(region, 0.0)

    def _down_regions(self) -> list[str]:
        return sorted(self._region_delay)

    def _retry_parked(self) -> None:
        """Retry parked messages (re-routed from their payload) for the regions they still need."""
        still: list[_Inbound] = []
        done: list[_Inbound] = []
        for item in self._parked:
            if item.epoch != self._epoch:
                self.stats.dropped_stale(1)  # the broker redelivers it on the new connection
                continue
            if all(self._region_waiting(r) for r in item.pending):
                still.append(item)
                continue
            m = self.router.route(item.topic, item.payload, received=item.arrived)
            for region in sorted(item.pending):
                if self._region_waiting(region):
                    continue
                rows = m.rows.get(region, [])
                held = [(r.quarantine_id, r.topic, r.payload) for r in m.rejections
                        if r.payload_region == region and r.payload is not None]
                if self._write_region(region, rows, held):  # type: ignore[arg-type]
                    item.pending.discard(region)
                    self.stats.rows_written(region, len(rows))
            (still if item.pending else done).append(item)
        self._parked = still
        if done:
            self.stats.unparked(self._ack(done))
            log.info("wrote and acknowledged %d parked messages; %d still parked", len(done), len(still))
        self.stats.set_parked(len(self._parked), self._down_regions())

    def _ack(self, items: list[_Inbound]) -> int:
        """Acknowledge in arrival order; never ack on a newer connection than the message came on.

        Returns how many were acknowledged (the others are counted as stale)."""
        stale = 0
        with self._epoch_lock:
            for item in items:
                if item.epoch == self._epoch:
                    self._client.ack(item.mid, item.qos)
                else:
                    stale += 1
        if stale:
            self.stats.dropped_stale(stale)
            log.info("%d messages arrived on a previous connection: not acknowledged, the broker redelivers", stale)
        return len(items) - stale
