"""The publisher against a real Mosquitto: birth/offline status, QoS 1 acks, refusals, late brokers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, BrokerSettings
from edge_agent.errors import PublishError
from edge_agent.mqtt import probe_broker
from edge_agent.outbox import MemoryOutbox, OutboxItem
from edge_agent.publisher import Publisher
from wire import Status

from .edge_support import Mosquitto, Subscriber, free_port, make_password_file, make_tls_material

pytestmark = pytest.mark.integration

STATUS_TOPIC = "status/v1/de-munich/pub-gw"


def settings(port: int) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {
            "port": port,
            "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.3},
            "connect_timeout_s": 2,
            "retry_unrouted": False,
        }
    )


def publisher(port: int, outbox_size: int = 100) -> Publisher:
    return Publisher(
        settings(port),
        gateway_id="pub-gw",
        site_id="de-munich",
        devices=["dev-a", "dev-b"],
        outbox=MemoryOutbox(outbox_size),
    )


def item(device: str, seq: int) -> OutboxItem:
    return OutboxItem(device, seq, f"tele/v1/de-munich/{device}", json.dumps({"seq": seq}).encode(), 10)


def statuses(sub: Subscriber) -> list[Status]:
    return [Status.model_validate_json(m.payload) for m in sub.on("status/")]


def test_birth_acks_counts_and_clean_shutdown(broker: Mosquitto, subscriber_factory: Callable[..., Subscriber]) -> None:
    sub = subscriber_factory(broker.port)
    pub = publisher(broker.port)
    pub.start()
    try:
        assert pub.wait_connected(5)
        for seq in (1, 2, 3):
            pub.submit(item("dev-a", seq))
        pub.submit(item("dev-b", 1))
        assert pub.wait_until_acked(5)
        counts = pub.counts()
        assert (counts["dev-a"].batches_published, counts["dev-a"].batches_acked) == (3, 3)
        assert (counts["dev-a"].readings_published, counts["dev-a"].readings_acked) == (30, 30)
        assert counts["dev-b"].batches_acked == 1 and counts["dev-b"].batches_dropped == 0
        # a client that subscribes later gets the birth as a retained message
        late = subscriber_factory(broker.port, client_id="late", topics=("status/v1/#",))
        assert late.wait_for(lambda ms: len(ms) >= 1, 5)
        birth = late.messages[0]
        assert birth.retain and birth.topic == STATUS_TOPIC
        status = Status.model_validate_json(birth.payload)
        assert (status.state, status.gateway_id, status.devices) == ("online", "pub-gw", ["dev-a", "dev-b"])
    finally:
        pub.close()
    assert sub.wait_for(lambda ms: any(s.state == "offline" for s in statuses(sub)), 5)
    assert [(s.state, s.reason) for s in statuses(sub)] == [("online", None), ("offline", "shutdown")]
    data = sub.on("tele/")
    assert [(m.topic.rsplit("/", 1)[1], json.loads(m.payload)["seq"]) for m in data] == [
        ("dev-a", 1),
        ("dev-a", 2),
        ("dev-a", 3),
        ("dev-b", 1),
    ]
    assert {m.qos for m in data} == {1}


def test_publisher_waits_for_a_late_broker(tmp_path: Path) -> None:
    workdir = tmp_path / "late"
    workdir.mkdir()
    late_broker = Mosquitto(workdir)
    pub = publisher(late_broker.port)
    pub.start()
    try:
        pub.submit(item("dev-a", 1))  # queued while there is no broker
        assert not pub.wait_connected(0.5)
        assert pub.last_error is not None and "cannot connect" in pub.last_error
        late_broker.start()
        assert pub.wait_until_acked(10)
        assert pub.counts()["dev-a"].batches_acked == 1
    finally:
        pub.close()
        late_broker.stop()


def test_probe_broker(broker: Mosquitto, closed_broker: Mosquitto) -> None:
    assert "connected to 127.0.0.1" in probe_broker(settings(broker.port), "probe-1")
    with pytest.raises(PublishError, match="cannot connect"):
        probe_broker(settings(free_port()), "probe-2")
    anonymous = r"refused an anonymous login \(no broker.username set\), client id 'probe-3'"
    with pytest.raises(PublishError, match=anonymous):
        probe_broker(settings(closed_broker.port), "probe-3")


def test_refused_connection_is_reported_and_retried(closed_broker: Mosquitto) -> None:
    pub = publisher(closed_broker.port)
    pub.start()
    try:
        pub.submit(item("dev-a", 1))
        assert not pub.wait_until_acked(1.0)
        assert pub.last_error is not None and "refused" in pub.last_error
        assert pub.unacked() == 1  # kept for when the broker lets us in
    finally:
        pub.close()


def test_an_unexpected_error_in_the_network_thread_is_survived(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = subscriber_factory(broker.port)
    pub = publisher(broker.port)
    pump = pub._pump
    fail = threading.Event()

    def failing_once() -> None:
        if fail.is_set():
            fail.clear()
            raise RuntimeError("boom")
        pump()

    monkeypatch.setattr(pub, "_pump", failing_once)
    pub.start()
    try:
        pub.submit(item("dev-a", 1))
        assert pub.wait_until_acked(5)
        fail.set()
        for seq in range(2, 6):
            pub.submit(item("dev-a", seq))
        assert pub.wait_until_acked(5)
        assert pub.connects == 2
    finally:
        pub.close()
    assert sub.wait_for(lambda ms: len([m for m in ms if m.topic == STATUS_TOPIC]) >= 4, 5)
    # the agent left with "Disconnect with will message", so the broker said it was offline meanwhile
    assert [(s.state, s.reason) for s in statuses(sub)] == [
        ("online", None),
        ("offline", "connection lost"),
        ("online", None),
        ("offline", "shutdown"),
    ]
    assert sorted({json.loads(m.payload)["seq"] for m in sub.on("tele/")}) == [1, 2, 3, 4, 5]


def test_tls_and_password_authentication(tmp_path: Path, make_config: Callable[..., AgentConfig]) -> None:
    workdir = tmp_path / "tls"
    workdir.mkdir()
    pki = make_tls_material(workdir)
    secure = Mosquitto(
        workdir,
        anonymous=False,
        listener_options=(f"cafile {pki['ca']}", f"certfile {pki['server']}", f"keyfile {pki['server_key']}"),
        options=(f"password_file {make_password_file(workdir, 'gw-user', 's3cret')}",),
    )
    secure.start()
    try:
        broker = {
            "port": secure.port,
            "username": "gw-user",
            "password": "s3cret",
            "tls": {"enabled": True, "ca_file": str(pki["ca"])},
            "retry_unrouted": False,  # no subscriber on this broker
        }
        stats = Agent(make_config(secure.port, broker=broker)).run(max_batches_per_device=2, ack_timeout_s=10)
        assert all(s.batches_acked == 2 for s in stats.values())
        wrong = BrokerSettings.model_validate({**broker, "password": "wrong"})
        with pytest.raises(PublishError, match=r"refused user name 'gw-user' \(broker.username\).*broker.password"):
            probe_broker(wrong, "probe-wrong-password")
        assert "with TLS" in probe_broker(BrokerSettings.model_validate(broker), "probe-ok")
    finally:
        secure.stop()
