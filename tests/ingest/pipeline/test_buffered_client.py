"""BufferedClient against Mosquitto: every message, in order, with fewer socket reads than packets, also for
messages larger than the buffer and across a broker restart (the buffer never outlives its connection); many
acknowledgements in one send, and a send that takes only part of them."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack import MosquittoServer
from edge_agent.mqtt import release
from ingest.pipeline.buffered_client import READ_SIZE, BufferedClient


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class _Receiver:
    def __init__(self, port: int, properties: Properties | None = None) -> None:
        self.payloads: list[bytes] = []
        self.connected = threading.Event()
        self.reading = threading.Event()  # cleared: the next message's callback waits until it is set
        self.reading.set()
        self.held: list[tuple[int, int]] | None = None  # a list: messages are not acknowledged on receipt
        self.client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id="buffered", protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        client.subscribe("t/#", qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.reading.wait(60)
        self.payloads.append(bytes(msg.payload))
        if self.held is None:
            client.ack(msg.mid, msg.qos)
        else:
            self.held.append((msg.mid, msg.qos))  # acknowledged later by the test, as the consumer's flush does

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


def _at_least(items: list[tuple[int, int]], n: int) -> bool:
    return len(items) >= n


def test_acknowledgements_of_a_flush_go_out_together(mqtt_broker: MosquittoServer) -> None:
    """The broker sends at most Receive Maximum (100) unacknowledged messages: 600 arrive only if every ack_all
    reached it. Each round the receiver holds 100 and the broker is silent: the round's acks leave in a few sends."""
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 100
    receiver = _Receiver(mqtt_broker.port, properties=props)
    receiver.held = []
    try:
        _wait(receiver.connected.is_set, "the connection")
        publishing = threading.Thread(target=_publish, args=(mqtt_broker.port, [b"%d" % n for n in range(600)]))
        publishing.start()
        held = receiver.held
        for acked in range(0, 600, 100):
            _wait(partial(_at_least, held, acked + 100), "a full window of unacknowledged messages")
            receiver.client.ack_all(held[acked : acked + 100])
        publishing.join(60)
        assert receiver.payloads == [b"%d" % n for n in range(600)]
        # the first five rounds' acks were sent (the next window came); the last round's may still be on their way
        assert 5 <= receiver.client.socket_writes <= 6 * 5  # not one send per message
    finally:
        receiver.close()


def test_a_partial_send_leaves_the_rest_at_the_head_of_the_queue() -> None:
    """A TCP socket with a small send buffer takes part of the PUBACKs per send (ending mid-packet): what the peer
    reads is every PUBACK, whole and in order."""
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="unit", protocol=mqtt.MQTTv5, manual_ack=True)
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)  # the kernel's minimum: a few KiB per send
    ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as paho sets it
    ours.setblocking(False)
    peer.setblocking(False)
    client._sock = ours
    mids = list(range(1, 20001))
    expected = b"".join(bytes([0x40, 2, mid >> 8, mid & 0xFF]) for mid in mids)  # PUBACK, success: 4 bytes each
    received = bytearray()

    def read() -> None:
        try:
            while chunk := peer.recv(65536):
                received.extend(chunk)
        except BlockingIOError:
            pass

    try:
        client.ack_all([(mid, 1) for mid in mids])  # the last ack writes what the socket takes (no loop thread)
        assert client.want_write()  # the buffer was too small for them all
        deadline = time.monotonic() + 30
        while client.want_write():
            assert time.monotonic() < deadline, "the PUBACKs were not all sent"
            read()
            select.select([], [ours], [], 1.0)  # room in the send buffer again
            client.loop_write()
        deadline = time.monotonic() + 30
        while len(received) < len(expected) and time.monotonic() < deadline:
            select.select([peer], [], [], 1.0)
            read()
        assert bytes(received) == expected
        assert client.socket_writes > 1
    finally:
        client._sock = None
        ours.close()
        peer.close()
        release(client)


class _StingySocket:
    """A socket that takes 7 bytes per send and refuses every other send (BlockingIOError). A fake, because a real
    socket's sends end where its buffer is full, a multiple of 4 bytes in practice: never inside a 4-byte PUBACK."""

    def __init__(self) -> None:
        self.taken = bytearray()
        self.refuse = False

    def send(self, data: bytes) -> int:
        self.refuse = not self.refuse
        if self.refuse:
            raise BlockingIOError
        self.taken.extend(data[:7])
        return min(len(data), 7)


def test_a_send_that_ends_inside_a_puback_resumes_there() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="unit", protocol=mqtt.MQTTv5, manual_ack=True)
    stingy = _StingySocket()
    client._sock = stingy  # type: ignore[assignment]  # only send() is used on this path
    mids = list(range(1, 101))
    try:
        client.ack_all([(mid, 1) for mid in mids])
        for _ in range(1000):
            if not client.want_write():
                break
            client.loop_write()
        assert not client.want_write()
        assert bytes(stingy.taken) == b"".join(bytes([0x40, 2, 0, mid]) for mid in mids)
    finally:
        client._sock = None
        release(client)
