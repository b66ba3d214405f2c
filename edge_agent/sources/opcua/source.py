"""The OPC UA source: subscribes to data changes of configured nodes with asyncua.

asyncua is asynchronous; the agent's sources are polled from threads. Each OPC UA source therefore
runs a private event loop on a thread of its own: :meth:`OpcUaSource.start` connects (with the
configured security mode, policy and client certificate), creates one subscription and monitors
every node; the server's notifications are queued, and :meth:`OpcUaSource.read` drains them into
readings. Each value keeps the server's *source timestamp* (when the device sampled it); values
that share a timestamp are merged into one reading. When the connection or the subscription is
lost, ``read()`` raises, so the agent's runner disconnects and retries with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies

from edge_agent.errors import SourceError
from edge_agent.sources.opcua.settings import OpcUaSettings
from wire import Reading, Value
from wire.envelope import MAX_TEXT_LENGTH

__all__ = ["OpcUaSource", "to_value"]

log = logging.getLogger(__name__)

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MAX_PENDING = 100_000
"""Notifications kept between two reads; beyond that the oldest are dropped (and counted)."""


def to_value(value: Any) -> Value | None:
    """An OPC UA value as a wire value, or None when it cannot be sent (arrays, NaN, bytes...)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:MAX_TEXT_LENGTH]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ua.LocalizedText):
        return (value.Text or "")[:MAX_TEXT_LENGTH]
    return None


async def _cancel_tasks() -> None:
    """Cancel what asyncua left running on the loop (watchdogs, publish loops) before it stops."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class OpcUaSource:
    """Data changes of the configured nodes of one OPC UA server, as readings of one device."""

    kind = "opcua"

    def __init__(self, settings: OpcUaSettings) -> None:
        self.settings = settings
        self._fields = {n.node_id: n.field for n in settings.nodes}
        self._node_ids: dict[str, ua.NodeId] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._pending: deque[tuple[datetime, str, Value]] = deque(maxlen=MAX_PENDING)
        self._lost: str | None = None
        self._unsendable: set[str] = set()
        self.dropped = 0  # notifications lost to MAX_PENDING or a bad status

    @property
    def device_id(self) -> str:
        return self.settings.device_id

    @property
    def poll_interval_s(self) -> float:
        return min(self.settings.publishing_interval_ms / 1000.0, 1.0)

    def init(self) -> None:
        for node in self.settings.nodes:
            try:
                self._node_ids[node.node_id] = ua.NodeId.from_string(node.node_id)
            except Exception as exc:
                raise SourceError(self.device_id, f"node id {node.node_id!r} is not valid: {exc}") from None

    # --- lifecycle (agent thread) -------------------------------------------------------------
    def start(self) -> None:
        if not self._node_ids:
            self.init()
        self._lost = None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"opcua-{self.device_id}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        budget = self.settings.timeout_s * 4 + 5  # endpoints, channel, session, subscription
        try:
            asyncio.run_coroutine_threadsafe(self._connect(), loop).result(budget)
        except Exception as exc:
            self.stop()
            if isinstance(exc, SourceError):
                raise
            reason = str(exc) or type(exc).__name__
            raise SourceError(self.device_id, f"cannot connect to {self.settings.endpoint}: {reason}") from None

    def read(self) -> list[Reading]:
        if self._client is None:
            raise SourceError(self.device_id, "read() before start()")
        readings = self._drain()
        if self._lost is not None and not readings:
            raise SourceError(self.device_id, f"{self.settings.endpoint}: {self._lost}")
        return readings

    def stop(self) -> None:
        loop, thread, client = self._loop, self._thread, self._client
        self._loop = self._thread = self._client = None
        if loop is None:
            return
        if client is not None:
            try:
                asyncio.run_coroutine_threadsafe(client.disconnect(), loop).result(self.settings.timeout_s + 1)
            except Exception as exc:  # the server may be gone already
                log.debug("source %s: disconnect: %s", self.device_id, exc)
        try:
            asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result(5)
        except Exception as exc:
            log.debug("source %s: cancelling tasks: %s", self.device_id, exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        if not loop.is_running():
            loop.close()

    # --- event loop thread -------------------------------------------------------------------
    async def _connect(self) -> None:
        s, sec = self.settings, self.settings.security
        client = Client(s.endpoint, timeout=s.timeout_s)
        client.application_uri = sec.application_uri
        client.name = client.description = f"edge-agent {s.device_id}"
        if s.username is not None:
            client.set_user(s.username)
            if s.password is not None:
                client.set_password(s.password.get_secret_value())
        if sec.mode != "None":
            assert sec.policy is not None and sec.certificate is not None and sec.private_key is not None
            await client.set_security(
                POLICIES[sec.policy],
                str(sec.certificate),
                str(sec.private_key),
                sec.private_key_password.get_secret_value() if sec.private_key_password else None,
                str(sec.server_certificate) if sec.server_certificate else None,
                getattr(ua.MessageSecurityMode, sec.mode),
            )
        client.connection_lost_callback = self._on_connection_lost
        await client.connect()
        self._client = client
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = float(s.publishing_interval_ms)
        params.RequestedLifetimeCount = 10_000
        params.RequestedMaxKeepAliveCount = client.get_keepalive_count(float(s.publishing_interval_ms))
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        subscription = await client.create_subscription(params, self)
        nodes = [client.get_node(self._node_ids[n.node_id]) for n in s.nodes]
        results = await subscription.subscribe_data_change(
            nodes, queuesize=s.queue_size, sampling_interval=ua.Duration(s.sampling_interval_ms)
        )
        failed = [
            f"{node.node_id} ({result.name})"
            for node, result in zip(s.nodes, results, strict=True)
            if isinstance(result, ua.StatusCode)
        ]
        if failed:
            raise SourceError(self.device_id, f"cannot subscribe to {', '.join(failed)}")

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._lost = f"connection lost ({exc or type(exc).__name__})"

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        """asyncua callback: one new value of one node."""
        field = self._fields.get(node.nodeid.to_string())
        if field is None:
            return
        dv = data.monitored_item.Value
        status = dv.StatusCode
        if status is not None and not status.is_good():
            self.dropped += 1
            return
        value = to_value(val)
        if value is None and val is not None:
            if field not in self._unsendable:
                log.warning("source %s: %s has a value that cannot be sent (%r)", self.device_id, field, val)
                self._unsendable.add(field)
            return
        ts = dv.SourceTimestamp or dv.ServerTimestamp or datetime.now(UTC)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        if len(self._pending) == MAX_PENDING:
            self.dropped += 1
        self._pending.append((ts, field, value))

    def status_change_notification(self, status: Any) -> None:
        """asyncua callback: the subscription's status changed (e.g. timed out on the server)."""
        code = getattr(status, "Status", status)
        if hasattr(code, "is_good") and not code.is_good():
            self._lost = f"subscription ended ({code.name})"

    # --- readings ----------------------------------------------------------------------------
    def _drain(self) -> list[Reading]:
        pending = self._pending
        items: list[tuple[datetime, str, Value]] = []
        while pending:
            try:
                items.append(pending.popleft())
            except IndexError:
                break
        if not items:
            return []
        items.sort(key=lambda item: item[0])  # stable: same-timestamp values keep their order
        readings: list[Reading] = []
        values: dict[str, Value]
        ts, values = items[0][0], {}
        for at, field, value in items:
            if at != ts or field in values:
                readings.append(Reading(ts=ts, values=values))
                ts, values = at, {}
            values[field] = value
        readings.append(Reading(ts=ts, values=values))
        return readings
