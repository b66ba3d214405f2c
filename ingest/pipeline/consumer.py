"""The MQTT consumer: shared subscription, manual acknowledgement after commit, in arrival order.

paho's network thread only queues messages (``on_message``). One flush thread takes up to
``flush_max_messages`` messages or waits ``flush_interval_ms``, routes them (policy decisions),
commits the rows of every region and the control records, and only then acknowledges the messages,
in the order they arrived. A failed commit is retried with backoff and nothing is acknowledged
meanwhile: the broker keeps the messages (Receive Maximum bounds how many we hold), so nothing is
lost; inserts are idempotent, so a retry or a redelivery stores nothing twice.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

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
from ingest.store.region import RegionWriter
from wire import Status, data_subscription
from wire.topics import STATUS_PREFIX, status_subscription

log = logging.getLogger("ingest.consumer")


@dataclass(frozen=True, slots=True)
class _Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes


class Consumer:
    def __init__(self, settings: IngestSettings, router: Router, stats: PipelineStats) -> None:
        self.settings = settings
        self.router = router
        self.stats = stats
        self._queue: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._regions = {name: RegionWriter(name, dsn) for name, dsn in settings.region_dsns.items()}
        self._control = ControlWriter(settings.control_dsn)
        self._thread = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
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
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s:%s refused the connection: %s", self.settings.mqtt_host,
                      self.settings.mqtt_port, reason)
            return
        options = SubscribeOptions(qos=1)
        client.subscribe([(data_subscription(self.settings.share_group), options),
                          (status_subscription(), SubscribeOptions(qos=1))])
        self.stats.set_connected(True)
        log.info("connected to %s:%s, subscribed to %s", self.settings.mqtt_host, self.settings.mqtt_port,
                 data_subscription(self.settings.share_group))

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.stats.set_connected(False)
        if not self._stop.is_set():
            log.warning("disconnected from broker %s:%s (%s); reconnecting", self.settings.mqtt_host,
                        self.settings.mqtt_port, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.stats.message_received()
        self._queue.put(_Inbound(msg.mid, msg.qos, msg.topic, msg.payload))

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
        for writer in self._regions.values():
            writer.close()
        self._control.close()

    # --- flush thread ---
    def _collect(self) -> list[_Inbound]:
        batch: list[_Inbound] = []
        try:
            batch.append(self._queue.get(timeout=0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.settings.flush_interval_ms / 1000
        while len(batch) < self.settings.flush_max_messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _flush_loop(self) -> None:
        while True:
            batch = self._collect()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._process(batch)

    def _process(self, batch: list[_Inbound]) -> None:
        routed: list[Routed] = []
        statuses: list[Status] = []
        for item in batch:
            if item.topic.startswith(STATUS_PREFIX + "/"):
                try:
                    statuses.append(Status.model_validate_json(item.payload))
                except ValidationError as exc:
                    log.warning("ignoring invalid status on %s: %s", item.topic, exc.errors()[0]["msg"])
                continue
            routed.append(self.router.route(item.topic, item.payload))
        delay = 0.2
        while True:
            try:
                rows = self._commit(routed, statuses)
                break
            except StoreUnavailableError as exc:
                self.stats.store_failed(exc.store, str(exc))
                log.error("commit failed, holding %d messages unacknowledged: %s", len(batch), exc)
                if self._stop.is_set() and delay > 5:
                    log.error("stopping with %d messages unacknowledged; the broker will redeliver them",
                              len(batch))
                    return
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 10.0)
        for item in batch:  # in arrival order
            self._client.ack(item.mid, item.qos)
        rejections: Counter[str] = Counter(r.code for m in routed for r in m.rejections)
        for m in routed:
            for r in m.rejections:
                log.warning("rejected %s (device=%s seq=%s): %s: %s", r.topic, r.device_id, r.seq, r.code, r.detail)
        self.stats.committed(
            acked=len(batch),
            stored=sum(1 for m in routed if m.stored),
            rejected=sum(1 for m in routed if not m.stored),
            rows=rows,
            decisions=dict(Counter(d.outcome for m in routed for d in m.decisions)),
            rejections=dict(rejections),
        )

    def _commit(self, routed: list[Routed], statuses: list[Status]) -> dict[str, int]:
        per_region: dict[str, list[tuple[object, ...]]] = {}
        for m in routed:
            for region, rows in m.rows.items():
                per_region.setdefault(region, []).extend(rows)
        written: dict[str, int] = {}
        for region, rows in per_region.items():
            writer = self._regions.get(region)
            if writer is None:
                raise StoreUnavailableError(region, "no DSN configured for this region (INGEST_REGION_DSNS)")
            writer.write(rows)
            written[region] = len(rows)
        progress: dict[str, tuple[int, int, int]] = {}
        for m in routed:
            if m.device_id is None or m.seq is None:
                continue
            seq, batches, readings = progress.get(m.device_id, (m.seq, 0, 0))
            progress[m.device_id] = (max(seq, m.seq), batches + 1, readings + m.readings)
        self._control.write(
            decisions=[d for m in routed for d in m.decisions],
            rejections=[r for m in routed for r in m.rejections],
            progress=progress,
            statuses=statuses,
        )
        return written
