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

Isolation (docs/message-isolation.md): routing never raises for one message (the router quarantines it);
before a batch is routed its sequence numbers are claimed in the control store (a conflict or an implausible
jump is quarantined); a store that refuses one message's *data* gets the flush again one message per
transaction and the message at fault is quarantined (``store_rejected``). A worker thread that dies makes
the pipeline unhealthy and calls ``on_fatal`` (``ingest serve`` exits non-zero); a pipeline that makes no
progress with messages waiting is reported stalled (:mod:`ingest.pipeline.watchdog`).

Sparkplug B (docs/sparkplug.md): an edge node's messages are worked out against its session in the control store
(ingest.sparkplug.sessions) between parsing and routing, like the sequence claims; a message that finds no birth
is held back (not acknowledged with its batch, its node's newer messages behind it) and worked out again every
0.25 s until INGEST_SPARKPLUG_BIRTH_WAIT_S after its arrival, because another replica may be committing the birth.

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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.cells.envelope import XACK_PREFIX, XFER_PREFIX, Receipt, xack_topic
from ingest.cells.link import BRIDGE_STATE_PREFIX, LinkSender
from ingest.cells.outbox import OutboxWriter
from ingest.cells.receive import CellContext
from ingest.config import IngestSettings
from ingest.errors import StoreDataError, StoreUnavailableError
from ingest.pipeline.buffered_client import BufferedClient
from ingest.pipeline.router import Parsed, Routed, Router
from ingest.pipeline.stats import PipelineStats
from ingest.quarantine.placement import HeldPayload, held_payloads, quarantine_id
from ingest.quarantine.store import QuarantineWriter
from ingest.records import RejectionRecord, Row
from ingest.sparkplug.mapping import SpbParsed
from ingest.sparkplug.sessions import Incoming, SessionStore
from ingest.store.control import ControlRecords, ControlWriter
from ingest.store.isolation import write_isolated
from ingest.store.region import RegionWriter
from ingest.store.sequences import Claim, JumpBound, SequenceClaimer
from ingest.thread_names import name_os_thread
from policy.errors import PolicyUnavailableError
from wire import Status, data_subscription
from wire.sparkplug import NAMESPACE as SPB_NAMESPACE
from wire.sparkplug import ncmd_topic, node_key, rebirth_payload
from wire.sparkplug import subscriptions as spb_subscriptions
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
    birth_wait: float | None = None  # a Sparkplug message held back for its birth: quarantined after this


@dataclass(slots=True)
class _Committed:
    """What the control thread did with a batch: seconds it took, and the messages it had to quarantine instead
    (the control store refused their records' data)."""

    seconds: float
    replaced: list[RejectionRecord] = field(default_factory=list)


@dataclass(slots=True)
class _RegionDone:
    """What a region's writer did with a batch: written (False: the region is down, park), and the messages
    whose data it refused (index into the job's messages -> the store's reason)."""

    ok: bool
    refused: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class _InFlight:
    """A batch whose control records are committed and whose region writes run in the writer threads."""

    batch: list[_Inbound]
    routed: list[tuple[_Inbound, Routed]]
    users: dict[str, list[_Inbound]]  # region -> messages with rows or held payloads there (job order)
    rows: dict[str, int]  # region -> rows handed to its writer
    control: Future[_Committed | None]  # None: stopping before it committed
    futures: dict[str, Future[_RegionDone]]
    submitted: float  # time.monotonic() when the region writes were handed over
    stages: dict[str, float]  # seconds: queued, route
    finished: bool = False


# A region job: per message, its rows and its held payloads (quarantine id, topic, payload) in that region.
_Job = list[tuple[list[Row], list[HeldPayload]]]


class Consumer:
    def __init__(
        self,
        settings: IngestSettings,
        router: Router,
        stats: PipelineStats,
        *,
        prepare_region: Callable[[str], None] | None = None,
        cell: CellContext | None = None,
        link: LinkSender | None = None,
    ) -> None:
        """``prepare_region(name)``: migrate a region store that was unreachable at start, before its first
        write (raises StoreUnavailableError while it still is). ``cell``: this ingest serves a residency cell
        (docs/cells.md): regions of other cells are written to the outbox, which ``link`` ships; parts from
        peer cells are received on ``xfer/v1/<cell>/...`` and receipted after commit."""
        self.settings = settings
        self.cell = cell
        self.link = link
        self.router = router
        self.stats = stats
        self.watchdog = stats.watchdog
        self._prepare_region = prepare_region
        self._unprepared: set[str] = set()
        self._queue: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._regions: dict[str, RegionWriter | OutboxWriter] = {
            name: RegionWriter(name, dsn) for name, dsn in settings.region_dsns.items()
        }
        if cell is not None:  # a region of another cell is written to the outbox, which the link ships
            for region, peer in sorted(_remote_regions(cell).items()):
                self._regions[region] = OutboxWriter(
                    region,
                    from_cell=cell.name,
                    to_cell=peer,
                    control_dsn=settings.control_dsn,
                    max_parts=settings.link_outbox_max,
                    on_commit=link.wake if link is not None else None,
                )
        self._quarantine = {name: QuarantineWriter(name, dsn) for name, dsn in settings.region_dsns.items()}
        self._control = ControlWriter(settings.control_dsn, max_clock_skew_s=settings.max_clock_skew_s)
        self._claims = SequenceClaimer(
            settings.control_dsn,
            JumpBound(settings.seq_jump_allowance, settings.seq_rate_max),
            gap_grace_s=settings.seq_gap_grace_s,
        )
        self._gap_sweep_at = 0.0  # when the flush loop next opens the gaps past their grace period
        self._sessions = SessionStore(
            settings.control_dsn, JumpBound(settings.seq_jump_allowance, settings.seq_rate_max)
        )
        self._rebirth_at: dict[tuple[str, str], float] = {}  # Sparkplug edge node -> last Rebirth request
        self._held: list[_Inbound] = []  # Sparkplug messages held back for their birth (flush thread only)
        self._held_retry_at = 0.0
        self._node_of: dict[int, str] = {}  # id(held message) -> its edge node's key
        self._gap_checks: dict[tuple[str, str], float] = {}  # Sparkplug node with a new gap -> when to check it
        self._parked: list[_Inbound] = []
        self._region_retry_at: dict[str, float] = {}
        self._region_delay: dict[str, float] = {}
        self._thread = threading.Thread(target=self._flush_thread, name="ingest-flush", daemon=True)
        # One thread commits the control records, in batch order, while the flush thread routes the next batch.
        self._control_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ingest-control", initializer=name_os_thread
        )
        # One worker per region: a flush writes its regions concurrently (each has its own connection).
        self._writers = ThreadPoolExecutor(
            max_workers=max(1, len(self._regions)), thread_name_prefix="ingest-region", initializer=name_os_thread
        )
        self._client = self._make_client()

    # --- MQTT side (paho network thread) ---
    def _make_client(self) -> BufferedClient:
        client = BufferedClient(  # paho, reading its socket 64 KiB at a time (small messages: docs/small-messages.md)
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
        if self.link is not None:
            client.on_publish = lambda _c, _u, mid, reason, _p: self.link.on_publish(mid, reason)
        return client

    def _filters(self) -> list[str]:
        """Every subscription: the data (shared), the statuses, and for a cell its incoming parts (shared), its
        receipts and its bridges' states."""
        filters = [data_subscription(self.settings.share_group), status_subscription()]
        if self.settings.sparkplug:
            filters += spb_subscriptions(self.settings.share_group)
        if self.cell is not None:
            filters.append(f"$share/{self.settings.share_group}/{XFER_PREFIX}/{self.cell.name}/+/+")
        if self.link is not None:
            filters += self.link.filters()
        return filters

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: object, _p: object) -> None:
        name_os_thread()  # paho's network thread (it runs the callbacks): "paho-mqtt-clien..." in top -H
        if getattr(reason, "is_failure", False):
            log.error(
                "broker %s:%s refused the connection: %s", self.settings.mqtt_host, self.settings.mqtt_port, reason
            )
            return
        with self._epoch_lock:
            self._epoch += 1
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._filters()])
        self.stats.set_connected(True)
        if self.link is not None:
            self.link.connected(True)
        log.info(
            "connected to %s:%s (session present: %s), subscribed to %s",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            getattr(flags, "session_present", "?"),
            data_subscription(self.settings.share_group),
        )

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: Properties) -> None:
        """A refused subscription (e.g. the broker's ACL does not grant this account the share group) leaves
        the replica connected but idle: report it, and be unhealthy until a later SUBACK grants it."""
        filters = self._filters()
        refused = [
            f"{topic}: {reason}"
            for topic, reason in zip(filters, reasons, strict=False)
            if getattr(reason, "is_failure", False)
        ]
        if refused:
            error = (
                f"broker {self.settings.mqtt_host}:{self.settings.mqtt_port} refused the subscription of "
                f"{self.settings.mqtt_username or 'anonymous'} to " + "; ".join(refused)
            )
            log.error("%s (check the broker ACL and INGEST_SHARE_GROUP)", error)
            self.stats.set_subscription_error(error)
        else:
            self.stats.set_subscription_error(None)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.stats.set_connected(False)
        if self.link is not None:
            self.link.connected(False)
        if not self._stop.is_set():
            log.warning(
                "disconnected from broker %s:%s (%s); reconnecting",
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                reason,
            )

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self.link is not None and msg.topic.startswith((XACK_PREFIX + "/", BRIDGE_STATE_PREFIX + "/")):
            self.link.on_message(msg)  # receipts and bridge states: for the link sender, acknowledged at once
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        self.stats.message_received()
        # paho types payload bytes | bytearray (MQTTMessage also carries outgoing messages); a received PUBLISH's
        # payload is always bytes (paho's decode_publish slices it with struct.unpack "s")
        payload = cast(bytes, msg.payload)
        self._queue.put(_Inbound(msg.mid, msg.qos, msg.topic, payload, self._epoch, time.monotonic()))

    # --- lifecycle ---
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = self.settings.receive_maximum
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self._client.connect_async(
            self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: commit and ack what was received, then disconnect (unacked messages stay at the broker)."""
        self._stop.set()
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        # paho-mqtt 2.2 has no public call that closes the socket pair of its loop (its __del__ does this)
        self._client._reset_sockets()
        self._control_thread.shutdown(wait=True)
        self._writers.shutdown(wait=True)
        for writer in (*self._regions.values(), *self._quarantine.values()):
            writer.close()
        self._control.close()
        self._claims.close()
        self._sessions.close()

    def new_writer(self, region: str) -> RegionWriter | OutboxWriter:
        """A writer of its own for ``region`` (a quarantine release): the region's store, or, for a region of
        another cell, this cell's outbox."""
        if region in self.settings.region_dsns:
            return RegionWriter(region, self.settings.region_dsns[region])
        if self.cell is not None:
            peer = _remote_regions(self.cell).get(region)
            if peer is not None:
                return OutboxWriter(
                    region,
                    from_cell=self.cell.name,
                    to_cell=peer,
                    control_dsn=self.settings.control_dsn,
                    max_parts=self.settings.link_outbox_max,
                )
        raise StoreUnavailableError(region, "no DSN configured for this region (INGEST_REGION_DSNS)")

    def new_control_writer(self) -> ControlWriter:
        """A control writer of its own (a quarantine release), configured like the pipeline's."""
        return ControlWriter(self.settings.control_dsn, max_clock_skew_s=self.settings.max_clock_skew_s)

    @property
    def client(self) -> mqtt.Client:
        """The replica's MQTT connection (the link sender publishes parts through it)."""
        return self._client

    def mark_unprepared(self, regions: set[str]) -> None:
        """Regions unreachable at start: migrated (``prepare_region``) before their first write."""
        self._unprepared |= regions

    # --- flush thread ---
    def _collect(self) -> list[_Inbound]:
        batch: list[_Inbound] = []
        if self._held and time.monotonic() >= self._held_retry_at:
            batch, self._held = self._held, []  # Sparkplug messages held back for their birth, first, in order
            self._node_of.clear()
            first = batch[0]
        else:
            try:
                first = self._queue.get(timeout=0.2 if not self._held else 0.05)
            except queue.Empty:
                return batch
            batch.append(first)
        size = sum(len(item.payload) for item in batch)
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

    def _flush_thread(self) -> None:
        name_os_thread()
        try:
            self._flush_loop()
        except BaseException as exc:  # a bug: report it (unhealthy, on_fatal), never die silently
            self.watchdog.died("ingest-flush", exc)

    def _flush_loop(self) -> None:
        inflight: _InFlight | None = None
        while True:
            self.watchdog.stage("collect")
            if inflight is not None and self._queue.empty():
                self._finish(inflight)  # nothing to overlap with: acknowledge now
                inflight = None
            batch = self._collect()
            if self._gap_checks:
                self._check_gaps()
            if time.monotonic() >= self._gap_sweep_at:
                self._open_due_gaps()
            if self._parked:
                self._finish(inflight)  # the writers' connections are free for the retry
                inflight = None
                self._retry_parked()
            if not batch:
                if self._stop.is_set():
                    self._finish(inflight)
                    return
                continue
            inflight = self._process(batch, inflight)

    def _process(self, batch: list[_Inbound], previous: _InFlight | None) -> _InFlight | None:
        """Route ``batch`` and queue its control commit while ``previous`` is being written; finish
        ``previous``; hand ``batch`` to the region writers. Returns the new batch in flight (None: stopping
        while the policy or the control store was out; nothing of ``batch`` is acknowledged)."""
        t0 = time.monotonic()
        self.watchdog.stage("route")
        done = self._route_all(batch)
        if done is None:
            self._finish(previous)
            return None
        routed, statuses = done
        if not batch:  # every message was a Sparkplug message held back for its birth
            return previous
        t1 = time.monotonic()
        groups = [ControlRecords(m.decisions, m.rejections, redelivered=m.redelivered) for _, m in routed]
        groups += [ControlRecords(statuses=[status]) for _, status in statuses]
        owners = [(item, m) for item, m in routed] + [(item, None) for item, _ in statuses]
        control = self._control_thread.submit(self._commit_control, groups, owners, len(batch))
        self._finish(previous)
        return self._submit_regions(batch, routed, control, {"queued": t0 - batch[0].arrived, "route": t1 - t0})

    def _route_all(
        self, batch: list[_Inbound]
    ) -> tuple[list[tuple[_Inbound, Routed]], list[tuple[_Inbound, Status]]] | None:
        """Every message of ``batch`` routed in isolation: statuses checked, batches parsed, their sequence
        numbers claimed, then routed (or quarantined as a conflict or a jump). While the policy engine or the
        control store is out, wait and try again (nothing is acknowledged meanwhile); None if stopping."""
        delay = 0.2
        while True:
            try:
                return self._try_route_all(batch)
            except (PolicyUnavailableError, StoreUnavailableError, StoreDataError) as exc:
                store = getattr(exc, "store", "policy")
                self.stats.store_failed(store, str(exc))
                log.error(
                    "%s unavailable while routing, holding %d messages unacknowledged: %s", store, len(batch), exc
                )
                self.watchdog.progress()
                if self._stop.is_set():
                    return None
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 10.0)

    def _try_route_all(
        self, batch: list[_Inbound]
    ) -> tuple[list[tuple[_Inbound, Routed]], list[tuple[_Inbound, Status]]]:
        routed: list[tuple[_Inbound, Routed]] = []
        statuses: list[tuple[_Inbound, Status]] = []
        parsed: list[tuple[_Inbound, Parsed]] = []
        sparkplug: list[tuple[_Inbound, SpbParsed]] = []
        now = datetime.now(UTC)
        skew = timedelta(seconds=self.settings.max_clock_skew_s)
        for item in batch:
            if item.topic.startswith(STATUS_PREFIX + "/"):
                status = self.router.status(item.topic, item.payload, now, skew)
                if isinstance(status, Status):
                    statuses.append((item, status))
                else:
                    routed.append((item, Routed(rejections=[status])))
                continue
            if item.topic.startswith(XFER_PREFIX + "/"):
                routed.append((item, self.router.receive_part(item.topic, item.payload)))
                continue
            if item.topic.startswith(SPB_NAMESPACE + "/"):
                s = self.router.parse_sparkplug(item.topic, item.payload, received=item.arrived)
                if isinstance(s, Routed):
                    routed.append((item, s))
                else:
                    sparkplug.append((item, s))
                continue
            p = self.router.parse(item.topic, item.payload, received=item.arrived)
            if isinstance(p, Routed):
                routed.append((item, p))
            else:
                parsed.append((item, p))
        if sparkplug:
            # A node with messages held back for their birth: its newer messages wait behind them (in order, so
            # that a held message is not taken for a gap once the birth is there).
            waiting = {self._node_of[id(item)] for item in self._held}
            behind = [(item, p) for item, p in sparkplug if p.where.node_key in waiting]
            sparkplug = [(item, p) for item, p in sparkplug if p.where.node_key not in waiting]
            done, held = self._route_sparkplug(sparkplug, hold=True) if sparkplug else ([], [])
            routed += done
            held_now = {id(item) for item in held} | {id(item) for item, _ in behind}
            if held_now:  # not acknowledged with this batch: worked out again shortly, in arrival order
                for item, spb in [*sparkplug, *behind]:
                    if id(item) in held_now:
                        self._node_of[id(item)] = spb.where.node_key
                self._held = sorted(
                    [*self._held, *(item for item in batch if id(item) in held_now)], key=lambda item: item.arrived
                )
                batch[:] = [item for item in batch if id(item) not in held_now]
                self._held_retry_at = time.monotonic() + 0.25
        if parsed:
            self.watchdog.stage("claim")
            verdicts = self._claims.claim(
                [Claim(p.batch.device_id, p.batch.seq, len(p.batch.readings), p.digest) for _, p in parsed]
            )
            self.stats.store_ok("control")
            self.watchdog.stage("route")
            for (item, p), verdict in zip(parsed, verdicts, strict=True):
                if verdict == "conflict":
                    m = self.router.reject_parsed(
                        p,
                        "seq_conflict",
                        (
                            f"batch {p.batch.seq} of {p.batch.device_id} was received before with other content; "
                            "a re-used sequence number is not stored (a retry must resend the same bytes)"
                        ),
                    )
                elif verdict == "jump":
                    m = self.router.reject_parsed(
                        p,
                        "seq_jump",
                        (
                            f"batch {p.batch.seq} of {p.batch.device_id} is further ahead of the device's highest "
                            f"seq than it could have produced (INGEST_SEQ_JUMP_ALLOWANCE, INGEST_SEQ_RATE_MAX); "
                            "not stored, the device's high-water mark did not move"
                        ),
                    )
                else:
                    m = self.router.route_parsed(p)
                    m.redelivered = verdict != "new"  # "new": this replica claimed the seq first
                routed.append((item, m))
        return routed, statuses

    def _route_sparkplug(
        self,
        items: list[tuple[_Inbound, SpbParsed]],
        *,
        hold: bool = False,
    ) -> tuple[list[tuple[_Inbound, Routed]], list[_Inbound]]:
        """Sparkplug messages resolved against their edge nodes' sessions (one control transaction: births, aliases,
        positions claimed), then routed like batches; Rebirth requests for the nodes that need one.

        ``hold``: a message that finds no birth is held back (returned apart, not routed) until
        INGEST_SPARKPLUG_BIRTH_WAIT_S after its arrival: with several replicas the birth may be committing in another
        one. Then it is quarantined (spb_no_birth) and its node asked for a Rebirth."""
        self.watchdog.stage("claim")
        outcome = self._sessions.process([Incoming(p.where, p.decoded, p.digest, p.device_id) for _, p in items])
        self.stats.store_ok("control")
        self.watchdog.stage("route")
        now = time.monotonic()
        routed: list[tuple[_Inbound, Routed]] = []
        held: list[_Inbound] = []
        for key, device, online in outcome.statuses:
            log.info(
                "Sparkplug %s%s is %s", key, f" device {device}" if device else "", "online" if online else "offline"
            )
        rebirth = set(outcome.rebirth)
        for node in outcome.gaps:
            self._gap_checks.setdefault(node, now + self.settings.sparkplug_gap_wait_s)
        for (item, p), r in zip(items, outcome.resolved, strict=True):
            if r.refused is not None and r.refused[0] == "spb_no_birth":
                if item.birth_wait is None:
                    item.birth_wait = item.arrived + self.settings.sparkplug_birth_wait_s
                if hold and now < item.birth_wait:
                    held.append(item)
                    continue
                rebirth.add((p.where.group, p.where.edge_node))
            m = self.router.route_sparkplug(p, r)
            m.redelivered = r.verdict != "new" or r.seen  # "new": this replica claimed the position first
            routed.append((item, m))
        self._request_rebirths(rebirth)
        return routed, held

    def _request_rebirths(self, nodes: set[tuple[str, str]]) -> None:
        """Ask each edge node for its births again (NCMD ``Node Control/Rebirth``, QoS 0 as the specification
        prescribes), at most once per INGEST_SPARKPLUG_REBIRTH_INTERVAL_S per node and replica."""
        now = time.monotonic()
        for group, edge_node in sorted(nodes):
            last = self._rebirth_at.get((group, edge_node))
            if last is not None and now - last < self.settings.sparkplug_rebirth_interval_s:
                continue
            self._rebirth_at[(group, edge_node)] = now
            self._client.publish(ncmd_topic(group, edge_node), rebirth_payload(int(time.time() * 1000)), qos=0)
            self.stats.rebirth_requested()
            log.info("asked Sparkplug edge node %s/%s for a Rebirth", group, edge_node)

    def _check_gaps(self) -> None:
        """Ask the Sparkplug nodes whose gap is still open INGEST_SPARKPLUG_GAP_WAIT_S after it was seen for a
        Rebirth (a gap that a late message filled meanwhile asks for nothing)."""
        now = time.monotonic()
        due = sorted(node for node, at in self._gap_checks.items() if at <= now)
        if not due:
            return
        try:
            still = self._sessions.open_gaps([node_key(g, n) for g, n in due])
        except (StoreUnavailableError, StoreDataError) as exc:
            self.stats.store_failed("control", str(exc))
            return  # checked again at the next round
        for node in due:
            del self._gap_checks[node]
        self._request_rebirths({(g, n) for g, n in due if node_key(g, n) in still})

    def _open_due_gaps(self) -> None:
        """Open the batch-seq gaps whose grace period is over (INGEST_SEQ_GAP_GRACE_S); a control store that is
        out is tried again 10 s later (the seqs wait above their devices' watermarks, nothing is lost; a connection
        attempt to an unreachable store must not hold the flush loop every second)."""
        self._gap_sweep_at = time.monotonic() + self._claims.sweep_every_s
        try:
            opened, _ = self._claims.open_due_gaps()
        except (StoreUnavailableError, StoreDataError) as exc:
            self._gap_sweep_at = time.monotonic() + max(self._claims.sweep_every_s, 10.0)
            self.stats.store_failed("control", str(exc))
            return
        self.stats.store_ok("control")  # as after a claim: an idle ingest reports the store back too
        if opened:
            log.debug("%d sequence gaps opened (missing for INGEST_SEQ_GAP_GRACE_S)", opened)

    def _reroute(self, item: _Inbound) -> Routed:
        """A parked message routed again from its payload (a Sparkplug message is a redelivery for its session:
        the same position and rows)."""
        if item.topic.startswith(SPB_NAMESPACE + "/"):
            s = self.router.parse_sparkplug(item.topic, item.payload, received=item.arrived)
            if isinstance(s, Routed):
                return s
            return self._route_sparkplug([(item, s)])[0][0][1]
        return self.router.route(item.topic, item.payload, received=item.arrived)

    def _submit_regions(
        self,
        batch: list[_Inbound],
        routed: list[tuple[_Inbound, Routed]],
        control: Future[_Committed | None],
        stages: dict[str, float],
    ) -> _InFlight:
        """Hand each region its rows and held payloads (one job per region, in its writer thread)."""
        jobs: dict[str, _Job] = {}
        users: dict[str, list[_Inbound]] = {}
        for item, m in routed:
            for region, (rows, held) in _per_region(m).items():
                jobs.setdefault(region, []).append((rows, held))
                users.setdefault(region, []).append(item)
        futures = {
            region: self._writers.submit(self._write_region, region, jobs[region])
            for region in sorted(users)
            if not self._region_waiting(region)
        }
        row_counts = {region: sum(len(r) for r, _ in jobs[region]) for region in users}
        return _InFlight(batch, routed, users, row_counts, control, futures, time.monotonic(), stages)

    def _finish(self, inflight: _InFlight | None) -> None:
        """Wait for a batch's control and region commits; acknowledge what is fully committed, park the rest
        (once). A batch whose control records were not committed (stopping) is not acknowledged at all."""
        if inflight is None or inflight.finished:
            return None
        inflight.finished = True
        t3 = time.monotonic()
        self.watchdog.stage("wait for commits")
        results = {region: future.result() for region, future in inflight.futures.items()}
        control = inflight.control.result()
        t4 = time.monotonic()
        if control is None:
            return None  # stopping: nothing acknowledged, the broker redelivers the whole batch
        written: dict[str, int] = {}
        refused: list[RejectionRecord] = []
        routed_of = {id(item): m for item, m in inflight.routed}
        for region, items in inflight.users.items():
            done = results.get(region)
            if done is not None and done.ok:  # a region still waiting to be retried was not submitted: not ok
                written[region] = inflight.rows[region]
                refused += [
                    _store_rejected(items[i], region, reason, routed_of.get(id(items[i])))
                    for i, reason in sorted(done.refused.items())
                ]
            else:
                for item in items:
                    item.pending.add(region)
        extra = control.replaced + refused
        if refused and not self._commit_rejections(refused):
            return None  # stopping before the quarantine records were committed: nothing acknowledged
        batch, routed = inflight.batch, inflight.routed
        complete = [item for item in batch if not item.pending]
        parked = [item for item in batch if item.pending]
        if parked:
            self._parked.extend(parked)
            log.warning(
                "parked %d messages waiting for region(s) %s",
                len(parked),
                sorted({r for item in parked for r in item.pending}),
            )
        acked = self._ack(complete)
        self._receipt([m for item, m in routed if not item.pending and item.epoch == self._epoch])
        self.watchdog.progress()
        self.stats.flush_timed(
            len(batch),
            {
                **inflight.stages,
                "control": control.seconds,
                "regions": t4 - inflight.submitted,
                "wait": t4 - t3,
                "ack": time.monotonic() - t4,
            },
        )
        every = [r for _, m in routed for r in m.rejections] + extra
        for r in every:
            log.warning(
                "quarantined %s (device=%s seq=%s): %s: %s [%s]",
                r.topic,
                r.device_id,
                r.seq,
                r.code,
                r.detail,
                f"held in {r.payload_region}" if r.payload_region else "metadata only",
            )
        self.stats.committed(
            acked=acked,
            stored=sum(1 for _, m in routed if m.stored),
            rejected=sum(1 for _, m in routed if not m.stored),
            rows=written,
            decisions=dict(Counter(d.outcome for _, m in routed for d in m.decisions)),
            rejections=dict(Counter(r.code for r in every)),
        )
        self.stats.set_parked(len(self._parked), self._down_regions())
        return None

    def _commit_control(
        self, groups: list[ControlRecords], owners: Sequence[tuple[_Inbound, Routed | None]], size: int
    ) -> _Committed | None:
        """Commit the audit records (control thread), retrying until the control store answers. A message (or
        status) whose records the store refuses is quarantined instead (``store_rejected`` / ``bad_status``).

        Returns the seconds it took (the stage ``control``) and those replacements, or None if stopping before it
        committed."""
        t0 = time.monotonic()
        replaced: list[RejectionRecord] = []

        def write() -> None:
            result = self._control.write_groups(groups)
            for i, error in sorted(result.refused.items()):
                item, m = owners[i]
                if m is None:
                    replaced.append(
                        RejectionRecord(
                            item.topic,
                            "bad_status",
                            f"the control store refused it: {error.reason}",
                            len(item.payload),
                            quarantine_id=quarantine_id(item.topic, item.payload, "bad_status", None),
                        )
                    )
                else:
                    replaced.append(_store_rejected(item, "control", error.reason, m))
            if replaced:
                self._control.write_groups([ControlRecords(rejections=[r]) for r in replaced])

        if not self._retry_control(write, size):
            return None
        return _Committed(time.monotonic() - t0, replaced)

    def _commit_rejections(self, rejections: list[RejectionRecord]) -> bool:
        """Commit quarantine records found after the batch's control commit (a region refused a message's data),
        in the control thread; wait for it. False if stopping before it committed."""

        def write() -> None:
            self._control.write_groups([ControlRecords(rejections=[r]) for r in rejections])

        return self._control_thread.submit(self._retry_control, write, len(rejections)).result()

    def _retry_control(self, write: Callable[[], None], size: int) -> bool:
        """Run a control write until the control store answers; False if stopping first."""
        delay = 0.2
        while True:
            try:
                write()
                self.stats.store_ok("control")
                self.watchdog.progress()
                return True
            except StoreUnavailableError as exc:
                self.stats.store_failed(exc.store, str(exc))
                log.error("control store unavailable, holding %d messages unacknowledged: %s", size, exc)
                self.watchdog.progress()
                if self._stop.is_set():
                    return False
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 10.0)

    def _write_region(self, region: str, job: _Job) -> _RegionDone:
        """Write a region's part of a batch (writer thread): rows and held payloads, per message. A message whose
        data the store refuses is reported in ``refused`` (the others are written); an outage makes it not ok."""
        try:
            writer = self._regions.get(region)
            if writer is None:
                raise StoreUnavailableError(region, "no DSN configured for this region (INGEST_REGION_DSNS)")
            if region in self._unprepared and self._prepare_region is not None:
                self._prepare_region(region)  # unreachable at start: migrate it now
                self._unprepared.discard(region)
            with_rows = [i for i, (rows, _) in enumerate(job) if rows]
            result = writer.write_groups([job[i][0] for i in with_rows])
            refused = {with_rows[i]: error.reason for i, error in result.refused.items()}
            with_held = [i for i, (_, held) in enumerate(job) if held and i not in refused]
            held = write_isolated(
                region,
                lambda some: self._quarantine[region].write([h for g in some for h in g]),
                [job[i][1] for i in with_held],
            )
            refused.update({with_held[i]: error.reason for i, error in held.refused.items()})
        except StoreUnavailableError as exc:
            self.stats.store_failed(exc.store, str(exc))
            delay = min(self._region_delay.get(region, 0.25) * 2, 10.0)
            self._region_delay[region] = delay
            self._region_retry_at[region] = time.monotonic() + delay * random.uniform(0.8, 1.2)
            log.error("region %s unavailable (retry in %.1fs): %s", region, delay, exc)
            self.watchdog.progress()
            return _RegionDone(False)
        self.stats.store_ok(region)
        self.watchdog.progress()
        if region in self._region_delay:
            log.info("region %s is back", region)
        self._region_delay.pop(region, None)
        self._region_retry_at.pop(region, None)
        return _RegionDone(True, refused)

    def _region_waiting(self, region: str) -> bool:
        return time.monotonic() < self._region_retry_at.get(region, 0.0)

    def _down_regions(self) -> list[str]:
        return sorted(self._region_delay)

    def _retry_parked(self) -> None:
        """Retry parked messages (re-routed from their payload) for the regions they still need."""
        self.watchdog.stage("retry parked")
        still: list[_Inbound] = []
        done: list[_Inbound] = []
        refused: list[RejectionRecord] = []
        receipts: dict[int, Routed] = {}
        for item in self._parked:
            if item.epoch != self._epoch:
                self.stats.dropped_stale(1)  # the broker redelivers it on the new connection
                continue
            if all(self._region_waiting(r) for r in item.pending):
                still.append(item)
                continue
            try:
                m = self._reroute(item)
            except (PolicyUnavailableError, StoreUnavailableError, StoreDataError) as exc:  # out now: try again later
                self.stats.store_failed(getattr(exc, "store", "policy"), str(exc))
                still.append(item)
                continue
            if m.receipt is not None:
                receipts[id(item)] = m
            parts = _per_region(m)
            for region in sorted(item.pending):
                if self._region_waiting(region):
                    continue
                rows, held = parts.get(region, ([], []))
                result = self._write_region(region, [(rows, held)])
                if result.ok:
                    item.pending.discard(region)
                    if 0 in result.refused:
                        refused.append(_store_rejected(item, region, result.refused[0], m))
                    else:
                        self.stats.rows_written(region, len(rows))
            (still if item.pending else done).append(item)
        self._parked = still
        if refused and not self._commit_rejections(refused):
            self._parked = still + done  # stopping: acknowledged nothing; the broker redelivers
            return
        if refused:
            self.stats.committed(
                acked=0, stored=0, rejected=0, rows={}, decisions={}, rejections=dict(Counter(r.code for r in refused))
            )
        if done:
            self.stats.unparked(self._ack(done))
            self._receipt([receipts[id(item)] for item in done if id(item) in receipts and item.epoch == self._epoch])
            log.info("wrote and acknowledged %d parked messages; %d still parked", len(done), len(still))
        self.stats.set_parked(len(self._parked), self._down_regions())

    def _receipt(self, committed: list[Routed]) -> None:
        """Tell each peer cell which of its parts this cell committed (stored, or refused and quarantined): it
        drops them from its outbox. QoS 1, not waited for: a lost receipt only makes the peer send again."""
        if self.cell is None:
            return
        by_peer: dict[str, list[object]] = {}
        for m in committed:
            if m.receipt is not None:
                by_peer.setdefault(m.receipt[0], []).append(m.receipt[1])
        now = datetime.now(UTC)
        for peer, parts in sorted(by_peer.items()):
            body = Receipt(parts=parts, at=now).model_dump_json().encode()
            self._client.publish(xack_topic(peer, self.cell.name), body, qos=1)

    def _ack(self, items: list[_Inbound]) -> int:
        """Acknowledge in arrival order; never ack on a newer connection than the message came on.

        Returns how many were acknowledged (the others are counted as stale)."""
        with self._epoch_lock:
            current = [(item.mid, item.qos) for item in items if item.epoch == self._epoch]
            self._client.ack_all(current)
        stale = len(items) - len(current)
        if stale:
            self.stats.dropped_stale(stale)
            log.info("%d messages arrived on a previous connection: not acknowledged, the broker redelivers", stale)
        return len(items) - stale


def _per_region(m: Routed) -> dict[str, tuple[list[Row], list[HeldPayload]]]:
    """A routed message's rows and held payloads (ingest.quarantine.placement.held_payloads), per region."""
    parts: dict[str, tuple[list[Row], list[HeldPayload]]] = {}
    for region, rows in m.rows.items():
        parts.setdefault(region, ([], []))[0].extend(rows)
    for region, held in held_payloads(m.rejections).items():
        parts.setdefault(region, ([], []))[1].extend(held)
    return parts


def _store_rejected(item: _Inbound, store: str, reason: str, m: Routed | None = None) -> RejectionRecord:
    """A message (or its part for one store) that a store refused: metadata only (the store that should have
    held it is the one that refused it). The other regions' parts of the message are stored."""
    code = "store_rejected"
    return RejectionRecord(
        item.topic,
        code,
        f"store {store} refused this message's data: {reason}",
        len(item.payload),
        m.device_id if m else None,
        m.seq if m else None,
        quarantine_id=quarantine_id(item.topic, item.payload, code, store),
    )


def _remote_regions(cell: CellContext) -> dict[str, str]:
    """Regions hosted by other cells -> the cell hosting each."""
    return {region: name for name, spec in cell.topology.cells.items() if name != cell.name for region in spec.regions}
