"""Settings of the Modbus TCP source (pydantic only: importing this does not import pymodbus)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.sources.base import SourceSettings

__all__ = ["WORDS", "ByteOrder", "ModbusRegister", "ModbusSettings", "RegisterType"]

RegisterType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
ByteOrder = Literal["big", "little"]
WORDS: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}
FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class ModbusRegister(BaseModel):
    """One value read from one or more consecutive registers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: FieldName = Field(description="Field name in the readings (as declared in the device registry).")
    table: Literal["holding", "input"] = Field(default="holding", description="holding (FC 3) or input (FC 4).")
    address: int = Field(ge=0, le=65535, description="Address of the first register, 0-based (as on the wire).")
    type: RegisterType = Field(default="uint16", description="Data type; 32-bit types span 2 registers, 64-bit 4.")
    scale: float = Field(default=1.0, description="value = raw * scale + offset.")
    offset: float = Field(default=0.0, description="value = raw * scale + offset.")
    byte_order: ByteOrder | None = Field(default=None, description="Bytes within a register (default: the source's).")
    word_order: ByteOrder | None = Field(
        default=None,
        description="Registers within a 32/64-bit value: big = most significant first (default: source's).",
    )

    @model_validator(mode="after")
    def _fits(self) -> ModbusRegister:
        if self.address + WORDS[self.type] - 1 > 65535:
            raise ValueError(f"a {self.type} at address {self.address} runs past register 65535")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def words(self) -> int:
        return WORDS[self.type]


class ModbusSettings(SourceSettings):
    """A Modbus TCP server (PLC, meter, drive) polled every ``interval_ms``."""

    type: Literal["modbus"] = Field(description="Source type.")
    host: str = Field(min_length=1, description="Host name or address of the Modbus TCP server.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port (502 is standard).")
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id; gateways route on it.")
    interval_ms: int = Field(default=1000, ge=10, le=3_600_000, description="Polling period in milliseconds.")
    timeout_s: float = Field(default=2.0, gt=0, le=60, description="Connect and response timeout.")
    byte_order: ByteOrder = Field(default="big", description="Default byte order within a register (Modbus: big).")
    word_order: ByteOrder = Field(default="big", description="Default register order of 32/64-bit values.")
    max_registers_per_read: int = Field(
        default=125, ge=1, le=125, description="Largest request; neighbouring registers are read together."
    )
    registers: list[ModbusRegister] = Field(min_length=1, max_length=256, description="The values to read.")

    @field_validator("registers")
    @classmethod
    def _unique_fields(cls, registers: list[ModbusRegister]) -> list[ModbusRegister]:
        seen: dict[str, int] = {}
        for i, reg in enumerate(registers):
            if reg.field in seen:
                raise ValueError(f"field {reg.field!r} is read by registers {seen[reg.field]} and {i}")
            seen[reg.field] = i
        return registers
