"""Publishes batches to the broker over MQTT v5 with QoS 1 and tracks their acknowledgements.

One network thread owns the paho client (no paho call happens on another thread). It connects,
publishes the retained birth status on every connect, moves batches from the :class:`Outbox` to
the wire within an in-flight window (and under the optional token-bucket rate limit), and counts
PUBACKs per device. A PUBACK with reason 0x10 ("no matching subscribers": nobody, e.g. no ingest,
took the batch) does not count as delivered when ``broker.retry_unrouted`` is on (the default): the
batch stays in the queue, publishing pauses (reconnect backoff), and the batch is sent again, first.
A PUBACK with reason 0x87 ("not authorized": the broker's ACL does not let this gateway's user publish
on the batch's topic) is handled the same way when ``broker.retry_unauthorized`` is on (the default):
the batch is kept, an error naming the topic, the device and the reason is logged (at most every 10 s),
``batches_unauthorized`` counts it, and publishing pauses with backoff, so the agent does not spin and
the queue flows again as soon as the ACL is fixed (one FIFO per gateway: the gateway's other devices
wait too). Other failure reason codes drop the batch (``batches_rejected``).
A gzip-compressed payload is published with the MQTT v5 content type
``application/json+gzip`` and the user property ``content-encoding: gzip``. When the connection is lost,
the in-flight batches go back to the outbox and are published again after reconnecting (QoS 1
is at-least-once: the ingest removes duplicates by ``(device_id, seq)``). Reconnects wait with
exponential backoff and jitter. A broker that refuses the agent's identity (wrong password, no user name,
banned...) is reported naming that identity and the config field that sets it
(:func:`edge_agent.mqtt.explain_refusal`), and retried more slowly: from 5 s up to 5 min.
The broker publishes the retained Last Will (offline, "connection lost") if the agent vanishes; a clean
:meth:`Publisher.close` publishes offline/"shutdown" itself.
"""

from __future__ import annotations

import bisect
import logging
import random
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.backoff import Backoff
from edge_agent.config import BrokerSettings
from edge_agent.mqtt import IDENTITY_REFUSALS, explain_refusal, make_client, release, status_payload
from edge_agent.outbox import EnqueueResult, Outbox, OutboxItem
from edge_agent.ratelimit import TokenBucket
from wire import StatusTopic

__all__ = ["GZIP_CONTENT_TYPE", "PUBLISH_LATENCY_BUCKETS_S", "DeviceCounts", "LatencySnapshot", "Publisher"]

log = logging.getLogger(__name__)

GZIP_CONTENT_TYPE = "application/json+gzip"
FULL_LOG_EVERY_S = 10.0
REFUSED_MIN_DELAY_S = 5.0
"""First wait after the broker refused the agent's identity (at least broker.reconnect.min_delay_s)."""
REFUSED_MAX_DELAY_S = 300.0
"""Cap of the doubling wait after identity refusals (at least broker.reconnect.max_delay_s)."""
NO_MATCHING_SUBSCRIBERS = 0x10
NOT_AUTHORIZED = 0x87  # what Mosquitto 2.0 sends when its ACL denies a QoS 1 publish (tests/broker/)
# Upper bounds (seconds) of the publish latency histogram: from milliseconds (a connected broker) to a
# day (a backlog replayed after an outage); Prometheus adds +Inf.
PUBLISH_LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
)  # fmt: skip


def _gzip_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = GZIP_CONTENT_TYPE
    props.UserProperty = ("content-encoding", "gzip")
    return props


@dataclass(slots=True)
class DeviceCounts:
    """What happened to one device's batches on the way to the broker."""

    batches_published: int = 0  # handed to the connection (first time)
    readings_published: int = 0
    batches_acked: int = 0  # acknowledged by the broker (PUBACK, success)
    readings_acked: int = 0
    batches_republished: int = 0  # published again after a lost connection
    batches_rejected: int = 0  # PUBACK with a failure reason code (e.g. not authorized)
    batches_dropped: int = 0  # evicted from a full queue (drop_oldest)
    batches_refused: int = 0  # refused by a full queue (reject_new)
    readings_dropped: int = 0  # readings of dropped and refused batches
    batches_unrouted: int = 0  # PUBACK "no matching subscribers": kept and sent again (retry_unrouted)
    batches_unauthorized: int = 0  # PUBACK "not authorized" (broker ACL): kept and sent again (retry_unauthorized)


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """Publish latencies (enqueue to PUBACK) observed so far, as a cumulative histogram."""

    bounds: tuple[float, ...]  # upper bounds of the buckets; the last bucket (+Inf) is implied
    cumulative: tuple[int, ...]  # observations <= each bound, then the total (len(bounds) + 1 values)
    sum_s: float

    @property
    def count(self) -> int:
        return self.cumulative[-1]


class _LatencyHistogram:
    """Bucket counts of publish latencies; not thread-safe (the publisher holds its lock)."""

    def __init__(self, bounds: tuple[float, ...] = PUBLISH_LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1  # a value equal to a bound goes in its bucket
        self.sum_s += seconds

    def snapshot(self) -> LatencySnapshot:
        cumulative, total = [], 0
        for n in self.counts:
            total += n
            cumulative.append(total)
        return LatencySnapshot(self.bounds, tuple(cumulative), self.sum_s)


class Publisher:
    """Owns the MQTT connection of one gateway; thread-safe :meth:`submit`, :meth:`counts`, :meth:`close`."""

    def __init__(
        self,
        broker: BrokerSettings,
        *,
        gateway_id: str,
        site_id: str,
        devices: Sequence[str],
        outbox: Outbox,
        rng: random.Random | None = None,
        tick_s: float = 0.05,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        self.broker = broker
        self.gateway_id = gateway_id
        self.site_id = site_id
        self.devices = list(devices)
        self.status_topic = str(StatusTopic(site_id=site_id, gateway_id=gateway_id))
        self._where = f"{broker.host}:{broker.port}"
        self._outbox = outbox
        self._tick_s = tick_s
        self._rate = rate_limit
        self._gzip_props = _gzip_properties()
        self._backoff = Backoff(broker.reconnect.min_delay_s, broker.reconnect.max_delay_s, rng)
        # refused identity (wrong password, no user name...): only a config or broker change helps, so wait longer
        self._refused_backoff = Backoff(
            max(broker.reconnect.min_delay_s, REFUSED_MIN_DELAY_S),
            max(broker.reconnect.max_delay_s, REFUSED_MAX_DELAY_S),
            rng,
        )
        self._client = make_client(broker, gateway_id)
        self._client.enable_logger(logging.getLogger("edge_agent.paho"))
        self._client.max_inflight_messages = 0  # paho sends at once; _pump() enforces the window
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.connect_async(broker.host, broker.port, broker.keepalive_s, clean_start=True)
        # network-thread state
        self._window = broker.max_inflight
        self._mids: dict[int, OutboxItem] = {}
        self._status_mids: set[int] = set()
        self._sent_before: set[tuple[str, int]] = set()
        self._unrouted: list[tuple[int, OutboxItem]] = []  # (publish order, batch) answered 0x10
        self._order = 0
        self._order_of: dict[int, int] = {}  # mid -> publish order
        self._unrouted_until = 0.0
        self._unrouted_backoff = Backoff(broker.reconnect.min_delay_s, broker.reconnect.max_delay_s, rng)
        self._unrouted_logged_at = 0.0
        self._unauthorized_logged_at = -FULL_LOG_EVERY_S
        # shared state
        self._cond = threading.Condition()
        self._counts: dict[str, DeviceCounts] = {d: DeviceCounts() for d in self.devices}
        self._latency = _LatencyHistogram()
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._offline_acked = threading.Event()
        self._closing_reason = "shutdown"
        self.last_error: str | None = None
        self._refusal: str | None = None
        self._identity_refused = False
        self.connects = 0
        self.connected_since: float | None = None  # epoch seconds
        self.last_ack_at: float | None = None  # epoch seconds of the last PUBACK of a batch
        self._full_logged_at = 0.0
        self._full_unlogged = [0, 0, 0]  # dropped batches, refused batches, readings since the last log line
        self._thread = threading.Thread(target=self._run, name=f"publisher-{gateway_id}", daemon=True)

    # --- API (any thread) -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Start the network thread; it connects in the background and keeps reconnecting."""
        self._thread.start()

    def submit(self, item: OutboxItem) -> None:
        """Queue an encoded batch; it is published as soon as the connection allows."""
        dropped = self._outbox.put(item)
        refused = bool(dropped) and dropped[-1] is item
        self._note_full([d for d in dropped if d is not item], item if refused else None)

    def note_enqueued(self, result: EnqueueResult, device_id: str, readings: int) -> None:
        """Count what a full queue did while the agent enqueued a batch (the queue already stored it)."""
        if result.evicted or result.refused:
            refused = None
            if result.refused:
                refused = OutboxItem(device_id, result.seq, "", b"", readings)
            self._note_full(result.evicted, refused)

    def _note_full(self, evicted: Sequence[OutboxItem], refused: OutboxItem | None) -> None:
        if not evicted and refused is None:
            return
        with self._cond:
            for old in evicted:
                counts = self._count(old.device_id)
                counts.batches_dropped += 1
                counts.readings_dropped += old.readings
                self._full_unlogged[0] += 1
                self._full_unlogged[2] += old.readings
            if refused is not None:
                counts = self._count(refused.device_id)
                counts.batches_refused += 1
                counts.readings_dropped += refused.readings
                self._full_unlogged[1] += 1
                self._full_unlogged[2] += refused.readings
            now = time.monotonic()
            if now - self._full_logged_at < FULL_LOG_EVERY_S:
                return
            dropped, refusals, readings = self._full_unlogged
            self._full_unlogged = [0, 0, 0]
            self._full_logged_at = now
        what = []
        if dropped:
            what.append(f"dropped the {dropped} oldest unsent batch(es)")
        if refusals:
            what.append(f"refused {refusals} new batch(es)")
        waiting = len(self._outbox)
        log.warning(
            "queue full (%d batches waiting): %s, %d readings lost; next report in %.0f s at the earliest",
            waiting,
            " and ".join(what),
            readings,
            FULL_LOG_EVERY_S,
            extra={
                "queue_batches": waiting,
                "batches_dropped": dropped,
                "batches_refused": refusals,
                "readings_lost": readings,
            },
        )

    def counts(self) -> dict[str, DeviceCounts]:
        with self._cond:
            return {d: replace(c) for d, c in self._counts.items()}

    def latency(self) -> LatencySnapshot:
        """Histogram of the time from enqueue (stored in the queue) to PUBACK of acknowledged batches.

        Batches replayed from the disk queue after a restart count from when they were first stored.
        """
        with self._cond:
            return self._latency.snapshot()

    def unacked(self) -> int:
        return len(self._outbox)

    def wait_until_acked(self, timeout_s: float) -> bool:
        """Block until every submitted batch is acknowledged (or rejected); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._outbox) == 0, timeout_s)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def close(self, reason: str = "shutdown", timeout_s: float = 5.0) -> None:
        """Publish the retained offline status (if connected), disconnect cleanly and stop the thread."""
        self._closing_reason = reason
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 1.0)
        if not self._thread.is_alive():
            release(self._client)
        left = len(self._outbox)
        if left:
            log.warning("%d batch(es) were not acknowledged before shutdown", left, extra={"queue_batches": left})

    # --- network thread ---------------------------------------------------------------------
    def _count(self, device_id: str) -> DeviceCounts:
        return self._counts.setdefault(device_id, DeviceCounts())

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                self._session()
            except Exception as exc:  # a bug or an unexpected paho error must not end publishing
                log.exception("publisher: unexpected error")
                self._lost()
                # leave so that the broker publishes our Last Will: we are not really online now
                self._client.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
                self._failed(f"unexpected error: {type(exc).__name__}: {exc}")
        self._shutdown()

    def _session(self) -> None:
        """One connection attempt and, if it succeeds, the loop until the connection ends."""
        client = self._client
        self._refusal = None
        self._identity_refused = False
        client.will_set(
            self.status_topic,
            status_payload(self.gateway_id, self.site_id, "offline", self.devices, "connection lost"),
            qos=1,
            retain=True,
        )
        try:
            client.reconnect()
        except (OSError, ssl.CertificateError) as exc:
            self._failed(f"cannot connect to {self.broker.host}:{self.broker.port}: {exc}")
            return
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._closing.is_set():
            self._pump()
            rc = client.loop(self._tick_s)
        if not self._closing.is_set():
            self._lost()
            self._failed(self.last_error or f"connection lost ({rc.name})")

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        refused = self._identity_refused
        backoff = self._refused_backoff if refused else self._backoff
        delay = backoff.next_delay()
        attempt = backoff.attempts
        level = (logging.ERROR if refused else logging.WARNING) if attempt <= 3 or attempt % 10 == 0 else logging.DEBUG
        log.log(
            level,
            "%s; retrying in %.1f s (attempt %d)",
            reason,
            delay,
            attempt,
            extra={"broker": self._where, "error": reason, "attempt": attempt, "retry_in_s": round(delay, 3)},
        )
        self._closing.wait(delay)

    def _lost(self) -> None:
        self._connected.clear()
        self.connected_since = None
        self._client.drop_out_messages()  # our outbox re-publishes them, in order
        self._mids.clear()
        self._status_mids.clear()
        self._unrouted.clear()  # still in flight for the outbox: requeue() puts them back in front
        self._order_of.clear()
        self._unrouted_until = 0.0
        requeued = self._outbox.requeue()
        if requeued:
            log.info("%d in-flight batch(es) will be published again", requeued, extra={"batches": requeued})

    def _pump(self) -> None:
        if not self._connected.is_set():
            return
        if self._unrouted:
            if time.monotonic() < self._unrouted_until:
                return  # nobody subscribes: wait before trying again
            self._unrouted.sort(key=lambda entry: entry[0])
        free = self._window - len(self._mids) - len(self._status_mids)
        if self._rate is not None and free > 0:
            free = min(free, self._rate.available())
        if free <= 0:
            return
        again = [item for _, item in self._unrouted[:free]]
        del self._unrouted[: len(again)]
        taken = again + self._outbox.take(free - len(again)) if not self._unrouted else again
        if self._rate is not None and taken:
            self._rate.take(len(taken))
        for item in taken:
            props = self._gzip_props if item.encoding == "gzip" else None
            info = self._client.publish(item.topic, item.payload, qos=1, properties=props)
            self._mids[info.mid] = item
            self._order += 1
            self._order_of[info.mid] = self._order
            with self._cond:
                counts = self._count(item.device_id)
                if item.key in self._sent_before:
                    counts.batches_republished += 1
                else:
                    self._sent_before.add(item.key)
                    counts.batches_published += 1
                    counts.readings_published += item.readings

    def _shutdown(self) -> None:
        client = self._client
        if self._connected.is_set():
            payload = status_payload(self.gateway_id, self.site_id, "offline", self.devices, self._closing_reason)
            info = client.publish(self.status_topic, payload, qos=1, retain=True)
            self._status_mids.add(info.mid)
            deadline = time.monotonic() + 3.0
            while not self._offline_acked.is_set() and time.monotonic() < deadline:
                if client.loop(self._tick_s) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            client.disconnect()
            deadline = time.monotonic() + 1.0
            while client.socket() is not None and time.monotonic() < deadline:
                client.loop(self._tick_s)
        self._connected.clear()

    # --- paho callbacks (network thread) ----------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._refusal = explain_refusal(self.broker, self.gateway_id, reason)
            self._identity_refused = reason.value in IDENTITY_REFUSALS
            self.last_error = self._refusal
            return  # paho closes the socket; _run() logs and retries with backoff
        receive_max = getattr(props, "ReceiveMaximum", 65535)
        self._window = max(1, min(self.broker.max_inflight, receive_max))
        self._backoff.reset()
        self._refused_backoff.reset()
        self.connects += 1
        self.connected_since = time.time()
        self.last_error = None
        payload = status_payload(self.gateway_id, self.site_id, "online", self.devices, None)
        self._status_mids.add(client.publish(self.status_topic, payload, qos=1, retain=True).mid)
        self._connected.set()
        waiting = len(self._outbox)
        log.info(
            "connected to %s:%d as %s (in-flight window %d, %d batch(es) waiting)",
            self.broker.host,
            self.broker.port,
            self.gateway_id,
            self._window,
            waiting,
            extra={"broker": self._where, "connects": self.connects, "window": self._window, "queue_batches": waiting},
        )

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.DisconnectFlags, reason: ReasonCode, _props: Any
    ) -> None:
        self._connected.clear()
        if not self._closing.is_set():
            lost = f"connection to {self.broker.host}:{self.broker.port} lost: {reason}"
            self.last_error = self._refusal or lost

    def _hold(self, order: int, item: OutboxItem) -> tuple[float, bool]:
        """Keep a batch the broker refused for now (no subscriber, or its ACL): it is sent again first, in
        order, after a backoff. Returns the seconds until the held batches are retried, and whether this call
        started that wait."""
        self._unrouted.append((order, item))
        now = time.monotonic()
        if self._unrouted_until > now:
            return self._unrouted_until - now, False
        delay = self._unrouted_backoff.next_delay()
        self._unrouted_until = now + delay
        return delay, True

    def _hold_unauthorized(self, order: int, item: OutboxItem, reason: ReasonCode) -> None:
        """Keep a batch the broker's ACL refused; pause publishing with backoff and say why."""
        delay, _ = self._hold(order, item)
        now = time.monotonic()
        with self._cond:
            self._count(item.device_id).batches_unauthorized += 1
        if now - self._unauthorized_logged_at >= FULL_LOG_EVERY_S:
            self._unauthorized_logged_at = now
            log.error(
                "the broker refused batch %s seq %d on %s: %s (PUBACK 0x%02X); the ACL of user %r must allow "
                "this topic; the batch is kept and sent again in %.1f s",
                item.device_id,
                item.seq,
                item.topic,
                reason,
                reason.value,
                self.broker.username,
                delay,
                extra={
                    "device_id": item.device_id,
                    "seq": item.seq,
                    "topic": item.topic,
                    "reason": str(reason),
                    "reason_code": reason.value,
                    "retry_in_s": round(delay, 3),
                },
            )

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any) -> None:
        if mid in self._status_mids:
            self._status_mids.discard(mid)
            if reason.is_failure:
                log.error(
                    "the broker refused the status message on %s: %s (PUBACK 0x%02X)",
                    self.status_topic,
                    reason,
                    reason.value,
                    extra={"topic": self.status_topic, "reason": str(reason), "reason_code": reason.value},
                )
            if self._closing.is_set():
                self._offline_acked.set()
            return
        item = self._mids.pop(mid, None)
        order = self._order_of.pop(mid, 0)
        if item is None:
            return
        if reason.value == NOT_AUTHORIZED and self.broker.retry_unauthorized:
            self._hold_unauthorized(order, item, reason)
            return
        if reason.value == NO_MATCHING_SUBSCRIBERS and self.broker.retry_unrouted:
            delay, started = self._hold(order, item)
            now = time.monotonic()
            if started and now - self._unrouted_logged_at >= FULL_LOG_EVERY_S:
                self._unrouted_logged_at = now
                log.warning(
                    "the broker has no subscriber for %s (PUBACK 'no matching subscribers'): "
                    "batches are kept and sent again in %.1f s",
                    item.topic,
                    delay,
                    extra={"device_id": item.device_id, "topic": item.topic, "retry_in_s": round(delay, 3)},
                )
            with self._cond:
                self._count(item.device_id).batches_unrouted += 1
            return
        self._outbox.ack(item)
        self._sent_before.discard(item.key)
        if not reason.is_failure:
            self._unrouted_backoff.reset()
        with self._cond:
            counts = self._count(item.device_id)
            if reason.is_failure:
                counts.batches_rejected += 1
                log.error(
                    "broker rejected batch %s seq %d: %s",
                    item.device_id,
                    item.seq,
                    reason,
                    extra={"device_id": item.device_id, "seq": item.seq, "reason": str(reason)},
                )
            else:
                counts.batches_acked += 1
                counts.readings_acked += item.readings
                now = time.time()
                self.last_ack_at = now
                if item.queued_at is not None:
                    self._latency.observe(max(0.0, now - item.queued_at))
            self._cond.notify_all()
