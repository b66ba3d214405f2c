"""Register decoding (no pymodbus here): data types, byte order, word order, scaling, read planning.

A register is 16 bits. ``byte_order`` says how the two bytes of each register are ordered
(``big``: high byte first, the Modbus norm); ``word_order`` says how the registers of a 32/64-bit
value are ordered (``big``: most significant register first). The four combinations are the
vendor notations ABCD (big/big), CDAB (big bytes, little words), BADC (little bytes, big words)
and DCBA (little/little).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.sources.modbus.settings import ModbusRegister

__all__ = ["ReadSpan", "decode", "encode", "plan_reads", "scaled"]

_STRUCT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


def _raw_bytes(registers: Sequence[int], byte_order: str, word_order: str) -> bytes:
    words = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for word in words:
        pair = int(word).to_bytes(2, "big")
        out += pair if byte_order == "big" else pair[::-1]
    return bytes(out)


def decode(registers: Sequence[int], data_type: str, byte_order: str = "big", word_order: str = "big") -> int | float:
    """The value held by ``registers`` (as many as the type needs)."""
    value: int | float = struct.unpack(">" + _STRUCT[data_type], _raw_bytes(registers, byte_order, word_order))[0]
    return value


def encode(value: int | float, data_type: str, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """The registers that hold ``value`` (the inverse of :func:`decode`; used by tests and simulators)."""
    raw = struct.pack(">" + _STRUCT[data_type], value)
    words = []
    for i in range(0, len(raw), 2):
        pair = raw[i : i + 2] if byte_order == "big" else raw[i : i + 2][::-1]
        words.append(int.from_bytes(pair, "big"))
    return words if word_order == "big" else list(reversed(words))


def scaled(raw: int | float, reg: ModbusRegister) -> int | float | None:
    """``raw * scale + offset``; integers stay integers when unscaled; None for NaN/inf (not sendable)."""
    value = raw if reg.scale == 1.0 and reg.offset == 0.0 else raw * reg.scale + reg.offset
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class ReadSpan:
    """One request: ``count`` registers of ``table`` from ``start``, and the values inside it."""

    table: str
    start: int
    count: int
    registers: tuple[ModbusRegister, ...]


def plan_reads(registers: Sequence[ModbusRegister], max_count: int = 125) -> list[ReadSpan]:
    """Group registers into as few requests as possible: neighbours (contiguous or overlapping) of a
    table share a request of at most ``max_count`` registers."""
    spans: list[ReadSpan] = []
    for table in ("holding", "input"):
        regs = sorted((r for r in registers if r.table == table), key=lambda r: (r.address, r.words))
        start = end = -1
        members: list[ModbusRegister] = []
        for reg in regs:
            reg_end = reg.address + reg.words  # exclusive
            if members and reg.address <= end and max(end, reg_end) - start <= max_count:
                members.append(reg)
                end = max(end, reg_end)
                continue
            if members:
                spans.append(ReadSpan(table, start, end - start, tuple(members)))
            start, end, members = reg.address, reg_end, [reg]
        if members:
            spans.append(ReadSpan(table, start, end - start, tuple(members)))
    return spans
