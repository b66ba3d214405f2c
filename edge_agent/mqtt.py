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

__all__ = ["IDENTITY_REFUSALS", "explain_refusal", "make_client", "probe_broker", "status_payload"]

IDENTITY_REFUSALS = frozenset({0x85, 0x86, 0x87, 0x8A, 0x8C})
"""CONNACK reason codes that refuse *who* connects (client id invalid, bad user name or password, not
authorized, banned, bad authentication method): retrying soon cannot help until the config or the broker's
identities change, so the publisher backs off further (:class:`edge_agent.publisher.Publisher`)."""


def explain_refusal(broker: BrokerSettings, client_id: str, reason: ReasonCode) -> str:
    """A refused CONNACK as an operator can act on it: which identity was refused, and which config field sets
    it. Mosquitto answers "Not authorized" both for a wrong password and for a missing user name."""
    where = f"broker {broker.host}:{broker.port}"
    code = f"{reason} (0x{reason.value:02X})"
    if reason.value not in IDENTITY_REFUSALS:
        return f"{where} refused the connection of client id {client_id!r}: {code}"
    if broker.username is not None:
        secret = (
            f"broker.password_file ({broker.password_file})"
            if broker.password_file is not None
            else "broker.password"
            if broker.password is not None
            else "no password (broker.password_file)"
        )
        who = f"user name {broker.username!r} (broker.username), client id {client_id!r}"
        hint = (
            f"check broker.username and {secret} in the agent config; the broker must know this identity "
            "(python -m broker credentials creates one per gateway, user name = gateway_id)"
        )
    elif broker.tls.cert_file is not None:
        who = f"the client certificate {broker.tls.cert_file} (broker.tls.cert_file), client id {client_id!r}"
        hint = "check that the broker trusts this certificate and maps its identity to an account"
    else:
        who = f"an anonymous login (no broker.username set), client id {client_id!r}"
        hint = (
            "this broker wants a login: set broker.username (the gateway_id) and broker.password_file in the "
            "agent config"
        )
    if reason.value == 0x85:
        hint = "the broker refuses this client id (gateway_id); use the id its identities file names"
    return f"{where} refused {who}: {code}; {hint}"


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


def release(client: mqtt.Client) -> None:
    """Close what a client that will not be used again holds. paho-mqtt 2.2 has no public call that closes the
    socket pair it wakes its loop with; dropped with the client, the pair is closed by the garbage collector at
    some later point (a ResourceWarning when the client sits in a reference cycle)."""
    client._reset_sockets()  # paho's own cleanup (its __del__ calls it)


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
            raise PublishError(explain_refusal(broker, client_id, result[0]))
    finally:
        client.disconnect()
        client.loop(0.05)
        release(client)
    tls = " with TLS" if broker.tls.enabled else ""
    return f"connected to {where}{tls} (MQTT v5)"
