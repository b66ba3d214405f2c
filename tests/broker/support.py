"""Helpers of the broker security tests: generated credentials, a real Mosquitto with them, MQTT clients.

Everything is real: the files come from ``broker.credentials``, the broker is Debian's Mosquitto
started by ``devstack.MosquittoServer(auth=..., tls=...)`` and the clients are paho-mqtt.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker.credentials import DYNSEC_FILE, Report, generate_for_registry, read_secret
from broker.identities import IdentitiesSpec
from ingest.registry import Registry, load_registry

REPO = Path(__file__).resolve().parents[2]
DEMO_REGISTRY = REPO / "deploy" / "local" / "registry.yaml"
DEV_CA = REPO / "broker" / "dev-ca.sh"


def demo_registry() -> Registry:
    return load_registry(DEMO_REGISTRY)


def spec(gateways: Mapping[str, Mapping[str, object]], ingest: tuple[str, ...] = ("ingest-1",)) -> IdentitiesSpec:
    return IdentitiesSpec.model_validate({"ingest": list(ingest), "gateways": gateways})


@dataclass
class Credentials:
    out: Path

    @property
    def dynsec_file(self) -> Path:
        return self.out / DYNSEC_FILE

    def secret_file(self, identity: str) -> Path:
        return self.out / "identities" / identity / "password"

    def secret(self, identity: str) -> str:
        return read_secret(self.secret_file(identity))

    def generate(self, registry: Registry, identities: IdentitiesSpec, **options: object) -> Report:
        return generate_for_registry(registry, identities, self.out, **options)  # type: ignore[arg-type]  # options: generate()'s keywords


@dataclass
class Connection:
    """A connected (or refused) paho MQTT v5 client and what the broker answered.

    Like the ingest, it subscribes again to its granted filters after a reconnect (a broker restart)."""

    client: mqtt.Client
    connack: ReasonCode | None = None
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    subacks: list[list[int]] = field(default_factory=list)  # reason codes of each SUBACK
    granted: list[str] = field(default_factory=list)  # filters the broker accepted
    connects: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> ReasonCode:
        """QoS 1 publish; the PUBACK reason code."""
        mid = self.client.publish(topic, payload, qos=1).mid
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.pubacks, timeout_s), f"no PUBACK for {topic}"
            return self.pubacks[mid]

    def subscribe(self, *topics: str, timeout_s: float = 5.0) -> list[int]:
        """Subscribe (QoS 1); the SUBACK's reason code per filter (1 granted QoS 1, 0x87 not authorized)."""
        self.subscribed.clear()
        self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        assert self.subscribed.wait(timeout_s), "no SUBACK"
        codes = self.subacks[-1]
        self.granted += [t for t, code in zip(topics, codes, strict=True) if code < 0x80]
        return codes

    def wait_messages(self, n: int, timeout_s: float = 5.0) -> list[tuple[str, bytes]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= n, timeout_s)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    username: str | None = None,
    password: str | None = None,
    *,
    client_id: str = "",
    ca_file: Path | None = None,
    timeout_s: float = 5.0,
) -> Connection:
    """Connect and wait for the CONNACK (``connection.connack`` says whether it was refused)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    conn = Connection(client)
    if username is not None:
        client.username_pw_set(username, password)
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    got = threading.Event()

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        conn.connack = reason
        conn.connects += 1
        if not reason.is_failure and conn.granted:  # a reconnect: subscribe again
            c.subscribe([(t, SubscribeOptions(qos=1)) for t in conn.granted])
        got.set()

    def on_subscribe(_c: mqtt.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: object) -> None:
        conn.subacks.append([code.value for code in codes])
        conn.subscribed.set()

    def on_publish(_c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        with conn.cond:
            conn.pubacks[mid] = reason
            conn.cond.notify_all()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with conn.cond:
            conn.messages.append((msg.topic, bytes(msg.payload)))
            conn.cond.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    if not got.wait(timeout_s):
        conn.close()
        raise AssertionError(f"no CONNACK from 127.0.0.1:{port} within {timeout_s} s")
    if conn.connack is not None and conn.connack.is_failure:
        client.loop_stop()
    return conn


def wait_until(predicate, timeout_s: float = 10.0, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
