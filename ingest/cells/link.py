"""Ships a cell's outbox to its peer cells and reads their receipts (docs/cells.md, "The link").

Every ingest replica of a cell runs one :class:`LinkSender`. It publishes due parts of the outbox (QoS 1) on
``xfer/v1/<peer>/<this cell>/<device>`` to the cell's own broker, whose bridge to the peer's broker carries
them (persistent session, QoS 1, its own queue). At most ``window`` parts per link are in flight (sent and
not receipted), so the bridge queue stays bounded and Mosquitto never drops one. A part not receipted
``resend_s`` after it was sent while the link was up is sent again (the receiver stores nothing twice).
Receipts (``xack/v1/<this cell>/<peer>/receipts``) delete parts from the outbox. Replicas share the outbox
through row locks (``FOR UPDATE SKIP LOCKED``): each part is sent by one replica at a time.

The link's state comes from the bridge's notifications on the cell's own broker (``bridge/v1/<bridge>/state``,
retained, "1" up, "0" down), where the bridge is named ``<this cell>-to-<peer>`` (ingest.cells.bridge).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import psycopg
from prometheus_client import Counter, Gauge, Histogram

from ingest.cells.envelope import XACK_PREFIX, decode_receipt, xfer_topic
from wire.errors import DecodeError

log = logging.getLogger("ingest.cells.link")

_UP = Gauge("ingest_link_up", "1 when the bridge of a link is connected (its notifications), per link", ["link"])
_DEPTH = Gauge("ingest_link_outbox_parts", "Parts waiting in the outbox (not receipted), per link", ["link"])
_LAG = Gauge("ingest_link_lag_seconds", "Age of the oldest part not yet receipted (0 when none), per link", ["link"])
_SENT = Counter("ingest_link_parts_sent", "Parts published for the first time, per link", ["link"])
_RESENT = Counter("ingest_link_parts_resent", "Parts published again (no receipt in time), per link", ["link"])
_RECEIPTED = Counter("ingest_link_parts_receipted", "Parts the peer cell receipted, per link", ["link"])
_DELAY = Histogram(
    "ingest_link_receipt_seconds",
    "From a part's commit in the outbox to its receipt, per link",
    ["link"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
)

_DUE = (
    "SELECT part_id, device_id, body, attempts FROM outbox WHERE to_cell = %s AND next_attempt_at <= now()"
    " AND (attempts = 0 OR NOT %s) ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED"
)
_IN_FLIGHT = "SELECT count(*) FROM outbox WHERE to_cell = %s AND attempts > 0 AND next_attempt_at > now()"
_SENT_SQL = (
    "UPDATE outbox SET sent_at = now(), attempts = attempts + 1,"
    " next_attempt_at = now() + make_interval(secs => %s) WHERE part_id = ANY(%s)"
)
_RECEIPTED_SQL = "DELETE FROM outbox WHERE part_id = ANY(%s) RETURNING to_cell, created_at"
_STATE = "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox WHERE to_cell = %s"


BRIDGE_STATE_PREFIX = "bridge/v1"


def bridge_name(from_cell: str, to_cell: str) -> str:
    """The Mosquitto bridge connection that carries ``from_cell``'s parts to ``to_cell``."""
    return f"{from_cell}-to-{to_cell}"


def bridge_state_topic(from_cell: str, to_cell: str) -> str:
    """Where the broker of ``from_cell`` publishes (retained, locally) whether that bridge is up: "1" or "0"."""
    return f"{BRIDGE_STATE_PREFIX}/{bridge_name(from_cell, to_cell)}/state"


@dataclass
class LinkState:
    """What the API shows of one link."""

    peer: str
    up: bool | None = None  # None: the broker has not said
    up_since: float | None = None
    outbox: int = 0
    lag_s: float = 0.0
    sent: int = 0
    resent: int = 0
    receipted: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        return {
            "peer": self.peer,
            "up": self.up,
            "outbox_parts": self.outbox,
            "lag_s": round(self.lag_s, 3),
            "sent": self.sent,
            "resent": self.resent,
            "receipted": self.receipted,
            "last_error": self.last_error,
        }


class LinkSender:
    """One replica's sender of a cell's outbox. It publishes through the replica's consumer connection (one
    MQTT identity per replica: the broker uses the user name as the client id), which hands it the receipts
    and the bridges' state messages (:meth:`on_message`) and the PUBACKs of its parts (:meth:`on_publish`)."""

    def __init__(
        self,
        *,
        cell: str,
        peers: Iterable[str],
        control_dsn: str,
        window: int = 1000,
        resend_s: float = 30.0,
        period_s: float = 0.2,
    ) -> None:
        self.cell = cell
        self.links = {peer: LinkState(peer) for peer in sorted(peers)}
        self.control_dsn = control_dsn
        self.window = window
        self.resend_s = resend_s
        self.period_s = period_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-link", daemon=True)
        self._conn: psycopg.Connection | None = None
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._acks: dict[int, object] = {}  # mid -> PUBACK reason code
        self._receipts: queue.SimpleQueue[object] = queue.SimpleQueue()

    def filters(self) -> list[str]:
        """What the consumer subscribes to for this sender: receipts for this cell, the bridges' states."""
        return [f"{XACK_PREFIX}/{self.cell}/+/receipts", *(bridge_state_topic(self.cell, p) for p in self.links)]

    # --- lifecycle ---
    def start(self, client: mqtt.Client) -> None:
        self._client = client
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._conn is not None:
            self._conn.close()

    def wake(self) -> None:
        """Parts were committed to the outbox: ship them now rather than at the next round."""
        self._wake.set()

    def connected(self, up: bool) -> None:
        """The consumer's connection came up (and subscribed to :meth:`filters`) or went down."""
        if up:
            self._connected.set()
            self._wake.set()
        else:
            self._connected.clear()

    def snapshot(self) -> list[dict[str, object]]:
        return [state.snapshot() for state in self.links.values()]

    # --- MQTT (called on the consumer's network thread) ---
    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic.startswith(BRIDGE_STATE_PREFIX + "/"):
            peer = topic.split("/")[2].removeprefix(f"{self.cell}-to-")
            state = self.links.get(peer)
            if state is not None:
                up = msg.payload.strip() == b"1"
                if up and not state.up:
                    state.up_since = time.monotonic()
                    self._wake.set()
                state.up = up
                _UP.labels(self._label(peer)).set(1 if up else 0)
            return
        try:
            receipt = decode_receipt(bytes(msg.payload))  # paho types it bytes | bytearray; bytes(b) is b
        except DecodeError as exc:
            log.warning("ignoring an invalid receipt on %s: %s", topic, exc)
            return
        for part in receipt.parts:
            self._receipts.put(part)
        self._wake.set()

    def on_publish(self, mid: int, reason: object) -> None:
        self._acks[mid] = reason

    # --- the sender thread ---
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except psycopg.Error as exc:
                log.error("link sender of cell %s: control store: %s", self.cell, str(exc).strip().splitlines()[0])
                for state in self.links.values():
                    state.last_error = f"control store: {str(exc).strip().splitlines()[0]}"
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._stop.wait(2.0)
            except Exception:  # never let the link die silently: log and go on
                log.exception("link sender of cell %s failed a round", self.cell)
                self._stop.wait(2.0)
            self._wake.wait(self.period_s)
            self._wake.clear()

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.control_dsn, connect_timeout=5)
        return self._conn

    def _round(self) -> None:
        conn = self._db()
        ids = []
        while not self._receipts.empty():
            ids.append(self._receipts.get_nowait())
        if ids:
            with conn.transaction():
                done = conn.execute(_RECEIPTED_SQL, (ids,)).fetchall()
            now = datetime.now(UTC)
            for to_cell, created in done:
                state = self.links.get(to_cell)
                if state is not None:
                    state.receipted += 1
                    _RECEIPTED.labels(self._label(to_cell)).inc()
                    _DELAY.labels(self._label(to_cell)).observe((now - created).total_seconds())
        for peer, state in self.links.items():
            if self._connected.is_set():
                self._send_due(conn, peer, state)
            with conn.transaction():
                count, age = conn.execute(_STATE, (peer,)).fetchone() or (0, None)
            state.outbox, state.lag_s = int(count), float(age or 0.0)
            _DEPTH.labels(self._label(peer)).set(state.outbox)
            _LAG.labels(self._label(peer)).set(state.lag_s)

    def _send_due(self, conn: psycopg.Connection, peer: str, state: LinkState) -> None:
        """Publish the due parts of one link within its window. Nothing while the link is down (the bridge queue
        holds what is in flight), and no re-send in the first ``resend_s`` after it came back up (the bridge is
        delivering its queue then)."""
        if state.up is False:
            return
        settling = state.up_since is not None and time.monotonic() - state.up_since < self.resend_s
        with conn.transaction():
            row = conn.execute(_IN_FLIGHT, (peer,)).fetchone()
            room = self.window - int(row[0] if row else 0)
            if room <= 0:
                return
            due = conn.execute(_DUE, (peer, settling, room)).fetchall()
            if not due:
                return
            published = []
            assert self._client is not None
            for part_id, device_id, body, attempts in due:
                info = self._client.publish(xfer_topic(peer, self.cell, device_id), bytes(body), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    state.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                    break
                published.append((part_id, attempts, info))
            sent: list[object] = []
            for part_id, attempts, info in published:
                try:
                    info.wait_for_publish(timeout=10)
                except (RuntimeError, ValueError) as exc:
                    state.last_error = f"publish: {exc}"
                    continue
                reason = self._acks.pop(info.mid, None)
                if (
                    not info.is_published()
                    or getattr(reason, "is_failure", False)
                    or getattr(reason, "value", 0) == 0x10
                ):  # no matching subscribers: no bridge for this link
                    state.last_error = (
                        f"the broker did not take a part for cell {peer}: {reason} (is the bridge "
                        f"{bridge_name(self.cell, peer)} configured?)"
                    )
                    continue
                sent.append(part_id)
                if attempts:
                    state.resent += 1
                    _RESENT.labels(self._label(peer)).inc()
                else:
                    state.sent += 1
                    _SENT.labels(self._label(peer)).inc()
            if sent:
                conn.execute(_SENT_SQL, (self.resend_s, sent))
                if len(sent) == len(due):
                    state.last_error = None

    def _label(self, peer: str) -> str:
        return f"{self.cell}->{peer}"
