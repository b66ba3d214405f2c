"""Modbus TCP source plugin: ``settings`` (config model), ``codec`` (types and orders), ``source``
(pymodbus client, imported only when a modbus source is configured). See ``README.md`` and
``sample.yaml`` in this folder."""

from edge_agent.sources.modbus.settings import ModbusRegister, ModbusSettings

__all__ = ["ModbusRegister", "ModbusSettings"]
