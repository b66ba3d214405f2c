"""The Modbus TCP source: polls holding/input registers with pymodbus' synchronous client.

Every ``interval_ms`` one reading is taken: the planned requests (neighbouring registers share one
request) are sent in turn and the reading is stamped with the wall-clock time the first request was
sent. A connection failure, a timeout or a Modbus exception response raises, so the agent's runner
closes the connection and retries with backoff (counted and shown by ``edge-agent status``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge_agent.errors import SourceError
from edge_agent.sources.modbus.codec import ReadSpan, decode, plan_reads, scaled
from edge_agent.sources.modbus.settings import ModbusSettings
from wire import Reading, Value

__all__ = ["ModbusSource"]

log = logging.getLogger(__name__)

EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusSource:
    """Reads one Modbus TCP device (one unit id) into one reading per poll."""

    kind = "modbus"

    def __init__(self, settings: ModbusSettings) -> None:
        self.settings = settings
        self._plan: list[ReadSpan] = []
        self._client: ModbusTcpClient | None = None
        self._skipped: set[str] = set()

    @property
    def device_id(self) -> str:
        return self.settings.device_id

    @property
    def poll_interval_s(self) -> float:
        return self.settings.interval_ms / 1000.0

    @property
    def where(self) -> str:
        return f"modbus://{self.settings.host}:{self.settings.port} unit {self.settings.unit_id}"

    def init(self) -> None:
        self._plan = plan_reads(self.settings.registers, self.settings.max_registers_per_read)

    def start(self) -> None:
        if not self._plan:
            self.init()
        s = self.settings
        client = ModbusTcpClient(s.host, port=s.port, timeout=s.timeout_s, retries=0, name=s.device_id)
        if not client.connect():  # type: ignore[no-untyped-call]  # pymodbus: ModbusTcpClient.connect unannotated
            client.close()  # type: ignore[no-untyped-call]  # pymodbus: ModbusTcpClient.close unannotated
            raise SourceError(s.device_id, f"cannot connect to {self.where}")
        self._client = client

    def read(self) -> list[Reading]:
        client = self._client
        if client is None:
            raise SourceError(self.device_id, "read() before start()")
        s = self.settings
        ts = datetime.now(UTC)
        values: dict[str, Value] = {}
        for span in self._plan:
            words = self._request(client, span)
            for reg in span.registers:
                offset = reg.address - span.start
                raw = decode(
                    words[offset : offset + reg.words],
                    reg.type,
                    reg.byte_order or s.byte_order,
                    reg.word_order or s.word_order,
                )
                value = scaled(raw, reg)
                if value is None:
                    if reg.field not in self._skipped:
                        log.warning("source %s: %s is not a finite number; not sent", self.device_id, reg.field)
                        self._skipped.add(reg.field)
                    continue
                values[reg.field] = value
        return [Reading(ts=ts, values=values)] if values else []

    def _request(self, client: ModbusTcpClient, span: ReadSpan) -> list[int]:
        s = self.settings
        read = client.read_holding_registers if span.table == "holding" else client.read_input_registers
        try:
            response = read(span.start, count=span.count, device_id=s.unit_id)
        except ModbusException as exc:
            raise SourceError(self.device_id, f"{self.where}: {exc}") from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            meaning = EXCEPTION_CODES.get(code, "error")
            raise SourceError(
                self.device_id,
                f"{self.where}: {span.table} registers {span.start}..{span.start + span.count - 1}: "
                f"exception {code} ({meaning})",
            )
        words = list(response.registers)
        if len(words) < span.count:
            raise SourceError(self.device_id, f"{self.where}: short response ({len(words)} of {span.count} registers)")
        return words

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]  # pymodbus: ModbusTcpClient.close unannotated
