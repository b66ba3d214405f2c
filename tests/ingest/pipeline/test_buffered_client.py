"""BufferedClient against Mosquitto: every message, in order, with fewer socket reads than packets, also for
messages larger than the buffer and across a broker restart (the buffer never outlives its connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack import MosquittoServer
from edge_agent.mqtt import release
from ingest.pipeline.buffered_client import READ_SIZE, BufferedClient


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class _Receiver:
    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self.connected = threading.Event()
        self.reading = threading.Event()  # cleared: the next message's callback waits until it is set
        self.reading.set()
        self.client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id="buffered", protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, clean_start=False)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        client.subscribe("t/#", qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.reading.wait(60)
        self.payloads.append(bytes(msg.payload))
        client.ack(msg.mid, msg.qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        release(self.client)


@pytest.fixture
def receiver(mqtt_broker: MosquittoServer) -> Iterator[_Receiver]:
    r = _Receiver(mqtt_broker.port)
    _wait(r.connected.is_set, "the connection")
    yield r
    r.close()


def _publish(port: int, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="publisher", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(f"t/{n % 7}", p, qos=1) for n, p in enumerate(payloads)]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
        release(client)


def test_every_message_in_order_with_fewer_reads_than_packets(
    mqtt_broker: MosquittoServer, receiver: _Receiver
) -> None:
    payloads = [f"message {n:05d} ".encode() * (1 + n % 40) for n in range(3000)]
    payloads += [b"x" * (READ_SIZE * 2 + 17), b"last"]  # larger than the buffer: completed across reads
    # The receiver's thread is held in its first message's callback while they are published: the broker's messages
    # wait in the socket (up to its in-flight window) and in its queue, so that the reads find many packets whatever
    # the machine's load. A receiver that keeps pace with the publisher would find one packet per read, buffered or not.
    receiver.reading.clear()
    _publish(mqtt_broker.port, payloads)
    receiver.reading.set()
    _wait(lambda: len(receiver.payloads) >= len(payloads), "every message")
    assert receiver.payloads == payloads
    assert receiver.client.socket_reads < len(payloads) / 2
    assert receiver.client.buffered() == 0


def test_a_broker_restart_starts_from_an_empty_buffer(mqtt_broker: MosquittoServer, receiver: _Receiver) -> None:
    _publish(mqtt_broker.port, [b"before"])
    _wait(lambda: receiver.payloads == [b"before"], "the first message")
    receiver.connected.clear()
    mqtt_broker.stop()
    mqtt_broker.restart()
    _wait(receiver.connected.is_set, "the reconnection")
    _publish(mqtt_broker.port, [b"after %d" % n for n in range(200)])
    _wait(lambda: len(receiver.payloads) >= 201, "the messages after the restart")
    assert receiver.payloads == [b"before", *(b"after %d" % n for n in range(200))]


def test_closing_the_socket_drops_what_was_buffered() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="unit", protocol=mqtt.MQTTv5)
    client._read_buffer, client._read_at = b"\x30\x05bytes of the old connection", 3
    assert client.buffered() > 0
    client._sock_close()
    assert client.buffered() == 0 and client._read_buffer == b""
    release(client)
