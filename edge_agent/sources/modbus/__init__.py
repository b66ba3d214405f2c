"""Modbus TCP source plugin: ``settings`` (config model), ``codec`` (types and orders), ``source``
(pymodbus client, imported only when a modbus source is configured). See ``README.md`` and
``sample.yaml`` in this folder."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.sources.base import Source, SourcePlugin
from edge_agent.sources.modbus.settings import ModbusRegister, ModbusSettings

__all__ = ["PLUGIN", "ModbusRegister", "ModbusSettings"]


def _load() -> Callable[[ModbusSettings], Source]:
    from edge_agent.sources.modbus.source import ModbusSource  # imports pymodbus

    return ModbusSource


PLUGIN = SourcePlugin(ModbusSettings, _load)
"""The registration of this folder's source type (edge_agent/sources/registry.py lists it)."""
