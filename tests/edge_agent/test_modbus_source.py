"""The Modbus TCP source: codec (types, byte and word order, scaling), read planning, config
validation, and reads against a real pymodbus server started by the test."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from pydantic import ValidationError
from pymodbus.client import ModbusTcpClient

from edge_agent.errors import SourceError
from edge_agent.sources import create_source
from edge_agent.sources.modbus.codec import decode, encode, plan_reads
from edge_agent.sources.modbus.settings import ModbusRegister, ModbusSettings
from edge_agent.sources.modbus.source import ModbusSource

from .edge_support import free_port
from .servers import ModbusServer

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
SAMPLES: dict[str, list[int | float]] = {
    "int16": [0, 1, -1, -32768, 32767],
    "uint16": [0, 1, 65535, 0x1234],
    "int32": [0, -1, -2_000_000_000, 2_000_000_000, 0x01020304],
    "uint32": [0, 4_000_000_000, 0x01020304],
    "int64": [0, -1, -(2**62), 2**62 + 5],
    "uint64": [0, 2**64 - 1, 0x0102030405060708],
    "float32": [0.0, -1.5, 3.140000104904175, 2.0**-20],  # exactly representable in 32 bits
    "float64": [0.0, -1.5, math.pi, 6.02214076e23],
}


# --- codec ------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_type", sorted(SAMPLES))
@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
def test_encode_decode_round_trip(data_type: str, byte_order: str, word_order: str) -> None:
    for value in SAMPLES[data_type]:
        words = encode(value, data_type, byte_order, word_order)
        assert all(0 <= w <= 0xFFFF for w in words)
        assert decode(words, data_type, byte_order, word_order) == value


def test_the_four_vendor_orders_of_a_float32() -> None:
    """1.0f is 0x3F800000: ABCD, CDAB, BADC and DCBA as documented."""
    assert encode(1.0, "float32", "big", "big") == [0x3F80, 0x0000]  # ABCD
    assert encode(1.0, "float32", "big", "little") == [0x0000, 0x3F80]  # CDAB
    assert encode(1.0, "float32", "little", "big") == [0x803F, 0x0000]  # BADC
    assert encode(1.0, "float32", "little", "little") == [0x0000, 0x803F]  # DCBA
    assert decode([0x1234], "uint16", "little") == 0x3412


@pytest.mark.parametrize("word_order", ["big", "little"])
def test_codec_agrees_with_pymodbus(word_order: Literal["big", "little"]) -> None:
    """pymodbus' own converter (big byte order, both word orders) reads what our encoder writes."""
    dt = ModbusTcpClient.DATATYPE
    for data_type, pymodbus_type in (("int32", dt.INT32), ("float32", dt.FLOAT32), ("uint64", dt.UINT64)):
        for value in SAMPLES[data_type]:
            words = encode(value, data_type, "big", word_order)
            assert ModbusTcpClient.convert_from_registers(words, pymodbus_type, word_order=word_order) == value
            assert ModbusTcpClient.convert_to_registers(value, pymodbus_type, word_order=word_order) == words


def reg(field: str, address: int, type_: str = "uint16", table: str = "holding", **kw: Any) -> ModbusRegister:
    return ModbusRegister.model_validate({"field": field, "address": address, "type": type_, "table": table, **kw})


def test_neighbouring_registers_share_a_request() -> None:
    regs = [
        reg("a", 0),
        reg("b", 1, "float32"),  # 1-2
        reg("c", 3),
        reg("d", 10),  # gap: new request
        reg("e", 0, table="input"),  # other table: new request
        reg("f", 2, "int16"),  # overlaps b: same request
    ]
    spans = plan_reads(regs)
    assert [(s.table, s.start, s.count, [r.field for r in s.registers]) for s in spans] == [
        ("holding", 0, 4, ["a", "b", "f", "c"]),
        ("holding", 10, 1, ["d"]),
        ("input", 0, 1, ["e"]),
    ]
    limited = plan_reads([reg(f"r{i}", i) for i in range(10)], max_count=4)
    assert [(s.start, s.count) for s in limited] == [(0, 4), (4, 4), (8, 2)]


# --- settings ---------------------------------------------------------------------------------
def settings(port: int, registers: list[dict[str, Any]], **kw: Any) -> ModbusSettings:
    return ModbusSettings.model_validate(
        {"type": "modbus", "device_id": "plc-01", "host": "127.0.0.1", "port": port, "timeout_s": 1, **kw}
        | {"registers": registers}
    )


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="runs past register 65535"):
        settings(502, [{"field": "x", "address": 65534, "type": "float64"}])
    with pytest.raises(ValidationError, match="'x' is read by registers 0 and 1"):
        settings(502, [{"field": "x", "address": 1}, {"field": "x", "address": 2}])
    with pytest.raises(ValidationError, match="type"):
        settings(502, [{"field": "x", "address": 1, "type": "int24"}])
    with pytest.raises(ValidationError, match="byte_order"):
        settings(502, [{"field": "x", "address": 1}], byte_order="middle")
    with pytest.raises(ValidationError, match="scale must not be 0"):
        settings(502, [{"field": "x", "address": 1, "scale": 0}])


# --- against a real pymodbus server -----------------------------------------------------------
@pytest.fixture(scope="module")
def modbus() -> Iterator[ModbusServer]:
    server = ModbusServer().start()
    yield server
    server.close()


TYPED = [  # field, table, address, type, byte order, word order, raw value
    ("t_int16", "holding", 0, "int16", "big", "big", -1234),
    ("t_uint16", "holding", 1, "uint16", "little", "big", 0xBEEF),
    ("t_int32", "holding", 2, "int32", "big", "little", -123_456_789),
    ("t_uint32", "input", 10, "uint32", "little", "little", 3_000_000_000),
    ("t_float32", "input", 12, "float32", "big", "big", -12.5),
    ("t_float64", "holding", 20, "float64", "big", "little", 1234.5678),
    ("t_float32_badc", "holding", 30, "float32", "little", "big", 0.25),
]


def test_reads_every_type_and_order_from_a_real_server(modbus: ModbusServer) -> None:
    registers = []
    for field, table, address, type_, bo, wo, value in TYPED:
        modbus.set(table, address, encode(value, type_, bo, wo))
        registers.append(
            {"field": field, "table": table, "address": address, "type": type_, "byte_order": bo, "word_order": wo}
        )
    source = ModbusSource(settings(modbus.port, registers))
    source.init()
    source.start()
    try:
        before = datetime.now(UTC)
        readings = source.read()
    finally:
        source.stop()
    assert len(readings) == 1
    reading = readings[0]
    assert before <= reading.ts <= datetime.now(UTC)  # stamped when read
    assert reading.values == {field: value for field, *_, value in TYPED}
    assert isinstance(reading.values["t_int16"], int) and isinstance(reading.values["t_float32"], float)


def test_scaling_source_defaults_and_changing_values(modbus: ModbusServer) -> None:
    modbus.set("input", 50, [2215])  # 221.5 degC with scale 0.1
    modbus.set("input", 51, encode(-250, "int16"))  # -2.5 bar with scale 0.01
    modbus.set("holding", 60, encode(42.0, "float32", "big", "little"))
    cfg = settings(
        modbus.port,
        [
            {"field": "temp_c", "table": "input", "address": 50, "scale": 0.1},
            {"field": "pressure_bar", "table": "input", "address": 51, "type": "int16", "scale": 0.01},
            {"field": "power_kw", "address": 60, "type": "float32", "scale": 0.5, "offset": 1},
            {"field": "high_word", "address": 61, "type": "uint16"},  # word order little: 42.0f's high word
        ],
        word_order="little",  # the source default applies to power_kw
    )
    source = create_source(cfg)
    source.init()
    source.start()
    try:
        first = source.read()[0].values
        modbus.set("input", 50, [2300])
        second = source.read()[0].values
    finally:
        source.stop()
    assert first["temp_c"] == pytest.approx(221.5)
    assert first["pressure_bar"] == pytest.approx(-2.5)
    assert first["power_kw"] == pytest.approx(42.0 * 0.5 + 1)
    assert first["high_word"] == struct.unpack(">HH", struct.pack(">f", 42.0))[0] == 0x4228
    assert second["temp_c"] == pytest.approx(230.0)


def test_an_exception_response_names_the_registers(modbus: ModbusServer) -> None:
    source = ModbusSource(settings(modbus.port, [{"field": "x", "address": 199, "type": "uint32"}]))
    source.init()
    source.start()
    try:
        with pytest.raises(SourceError, match=r"holding registers 199\.\.200: exception 2 \(illegal data address\)"):
            source.read()
    finally:
        source.stop()


def test_an_unreachable_server_fails_start() -> None:
    port = free_port()
    source = ModbusSource(settings(port, [{"field": "x", "address": 0}]))
    source.init()
    with pytest.raises(SourceError, match=f"cannot connect to modbus://127.0.0.1:{port} unit 1"):
        source.start()
    source.stop()  # harmless when not started
