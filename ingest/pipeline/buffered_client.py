"""paho's MQTT client, reading its socket 64 KiB at a time and acknowledging many messages at once (the consumer's;
docs/small-messages.md).

paho-mqtt 2.2 reads each packet with three or four ``recv`` calls (its type byte, its length a byte at a time, then
the rest) and handles one packet per turn of its network loop (a ``select`` and the loop's bookkeeping each). For a
consumer of small messages that is most of paho's thread. :class:`BufferedClient` overrides two of paho's
internals, and only those:

- ``_sock_recv(n)`` serves up to ``n`` bytes from a buffer filled by one ``recv(65536)`` when it is empty (errors,
  ``BlockingIOError`` and the end of the stream come from paho's own ``_sock_recv``, unchanged);
- ``loop_read()`` goes on reading packets while the buffer holds bytes (paho's loop would otherwise ``select`` on a
  socket whose bytes are already in the buffer, and wait);
- ``_sock_close()`` drops the buffer with the socket (a reconnection never parses the old connection's bytes).

A packet split across two reads is completed as paho completes it (it keeps its partial packet between calls).

Acknowledgements, for a consumer that acknowledges a flush's messages together (after their commit):

- :meth:`BufferedClient.ack_all` acknowledges many messages and wakes paho's loop once (paho's ``ack()`` writes a
  byte to the loop's wake-up socket for every packet it queues: a system call per message, in the caller's thread);
- ``_packet_write()`` sends consecutive PUBACKs at the head of the outgoing queue with one ``send`` (paho sends each
  packet with its own). A PUBACK has no callback and no state once sent; a partial send leaves the unsent rest at
  the head of the queue, as paho does. Any other packet is written by paho's own ``_packet_write``.
Written against paho-mqtt 2.2 (``pyproject.toml`` pins ``<3``); ``tests/ingest/pipeline/test_buffered_client.py``
runs it against Mosquitto.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_SIZE = 65536
_PUBACK = 0x40  # the packet type (high nibble of the first byte)
_MAX_RUN = 1024  # PUBACKs per send at most (4-6 bytes each)


class BufferedClient(mqtt.Client):
    """A paho ``Client`` whose reads are buffered (see the module's docstring); otherwise paho's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_at = 0
        self.socket_reads = 0
        """``recv`` calls on the socket (for tests and profiling)."""
        self.socket_writes = 0
        """``send`` calls that carried PUBACKs together (for tests and profiling)."""
        self._quiet = threading.local()  # .on: this thread queues packets without waking paho's loop

    def _sock_recv(self, bufsize: int) -> bytes:
        start = self._read_at
        if start >= len(self._read_buffer):
            data = super()._sock_recv(READ_SIZE)  # raises as paho does (BlockingIOError: nothing to read yet)
            self.socket_reads += 1
            if len(data) <= bufsize:  # all of it asked for, or the end of the stream (b"")
                self._read_buffer, self._read_at = b"", 0
                return data
            self._read_buffer, start = data, 0
        end = min(start + bufsize, len(self._read_buffer))
        self._read_at = end
        return self._read_buffer[start:end]

    def buffered(self) -> int:
        """Bytes read from the socket and not handed to paho yet."""
        return len(self._read_buffer) - self._read_at

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _sock_close(self) -> None:
        try:
            super()._sock_close()
        finally:
            self._read_buffer, self._read_at = b"", 0

    def ack_all(self, acks: Sequence[tuple[int, int]]) -> None:
        """``ack(mid, qos)`` for each pair, in order; paho's loop is woken once, by the last. (Should an ack raise,
        those queued before it are written at the loop's next turn: it writes whatever is queued.)"""
        if not acks:
            return
        self._quiet.on = True
        try:
            for mid, qos in acks[:-1]:
                self.ack(mid, qos)
        finally:
            self._quiet.on = False
        self.ack(*acks[-1])

    def _packet_queue(
        self, command: int, packet: bytes | bytearray, mid: int, qos: int, info: mqtt.MQTTMessageInfo | None = None
    ) -> MQTTErrorCode:
        if not getattr(self._quiet, "on", False):
            return super()._packet_queue(command, packet, mid, qos, info)
        # paho's own entry, without the wake-up write (ack_all wakes the loop once, with its last ack)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        while len(out) > 1 and out[0]["command"] & 0xF0 == _PUBACK and out[1]["command"] & 0xF0 == _PUBACK:
            run: list[Any] = []  # paho's _OutPacket entries
            while out and len(run) < _MAX_RUN:
                packet = out.popleft()
                if packet["command"] & 0xF0 != _PUBACK:
                    out.appendleft(packet)
                    break
                run.append(packet)
            try:
                sent = self._sock_send(b"".join(p["packet"][p["pos"] :] for p in run))
            except (AttributeError, ValueError):  # as paho: no socket (closed meanwhile)
                out.extendleft(reversed(run))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                out.extendleft(reversed(run))
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                out.extendleft(reversed(run))
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            self.socket_writes += 1
            with self._msgtime_mutex:
                self._last_msg_out = mqtt.time_func()
            for i, packet in enumerate(run):
                if sent >= packet["to_process"]:
                    sent -= packet["to_process"]
                    packet["pos"] += packet["to_process"]
                    packet["to_process"] = 0
                    continue
                packet["pos"] += sent  # partly sent: it and the rest stay at the head, for the next turn
                packet["to_process"] -= sent
                out.extendleft(reversed(run[i:]))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_write()
