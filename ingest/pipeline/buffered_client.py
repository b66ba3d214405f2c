"""paho's MQTT client, reading its socket 64 KiB at a time (the consumer's; docs/small-messages.md).

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
Written against paho-mqtt 2.2 (``pyproject.toml`` pins ``<3``); ``tests/ingest/pipeline/test_buffered_client.py``
runs it against Mosquitto.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_SIZE = 65536


class BufferedClient(mqtt.Client):
    """A paho ``Client`` whose reads are buffered (see the module's docstring); otherwise paho's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_at = 0
        self.socket_reads = 0
        """``recv`` calls on the socket (for tests and profiling)."""

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
