"""paho-mqtt wiring shared by the publisher and ``edge-agent check``: clients, status payloads, probing."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config import BrokerSettings
from edge_agent.errors import ConfigError, PublishError
from wire import Status

__all__ = ["make_client", "probe_broker", "status_payload"]


def make_client(broker: BrokerSettings, client_id: str) -> mqtt.Client:
    """A paho MQTT v5 client with the credentials and TLS of ``broker`` (not connected)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect_timeout = broker.connect_timeout_s
    if broker.username is not None:
        try:
            password = broker.secret()
        except ValueError as exc:
            raise ConfigError(str(exc), field="broker.password_file") from None
        client.username_pw_set(broker.username, password)
    tls = broker.tls
    if tls.enabled:
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"cannot set up TLS: {exc}", field="broker.tls") from None
    return client


def status_payload(
    gateway_id: str, site_id: str, state: Literal["online", "offline"], devices: Sequence[str], reason: str | None
) -> bytes:
    status = Status(
        gateway_id=gateway_id,
        site_id=site_id,
        state=state,
        at=datetime.now(UTC),
        devices=list(devices),
        reason=reason,
    )
    return status.model_dump_json(exclude_none=True).encode()


def probe_broker(broker: BrokerSettings, client_id: str, timeout_s: float | None = None) -> str:
    """Connect, wait for the CONNACK and disconnect; return a description or raise PublishError."""
    timeout = timeout_s if timeout_s is not None else broker.connect_timeout_s
    client = make_client(broker, client_id)
    result: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    where = f"{broker.host}:{broker.port}"
    try:
        client.connect(broker.host, broker.port, broker.keepalive_s)
    except (OSError, ssl.CertificateError) as exc:
        raise PublishError(f"cannot connect to {where}: {exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while not result and time.monotonic() < deadline:
            if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if not result:
            raise PublishError(f"{where} accepted TCP but sent no MQTT CONNACK within {timeout:.1f} s")
        if result[0].is_failure:
            raise PublishError(f"broker {where} refused the connection: {result[0]}")
    finally:
        client.disconnect()
        client.loop(0.05)
    tls = " with TLS" if broker.tls.enabled else ""
    return f"connected to {where}{tls} (MQTT v5)"
