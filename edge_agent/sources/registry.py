"""Source types by name: an explicit map from the config's ``type`` to a factory (no import magic).

Plugins that need a protocol library (pymodbus, asyncua) import it only when a source of their
type is created, so a gateway that uses none of them never loads them (memory footprint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from edge_agent.errors import ConfigError, SourceError
from edge_agent.sources.base import Source, SourceSettings
from edge_agent.sources.modbus.settings import ModbusSettings
from edge_agent.sources.opcua.settings import OpcUaSettings
from edge_agent.sources.simulated import SimulatedSettings, SimulatedSource

__all__ = ["SOURCES", "SourceFactory", "create_source"]

SourceFactory = Callable[[SourceSettings], Source]
S = TypeVar("S", bound=SourceSettings)


def _expect(settings: SourceSettings, kind: type[S]) -> S:
    if not isinstance(settings, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(settings).__name__}")
    return settings


def _missing(settings: SourceSettings, exc: ImportError) -> SourceError:
    return SourceError(
        settings.device_id,
        f"the {settings.type} source needs {exc.name or 'a library'}: pip install 'residency-telemetry[edge]'",
    )


def _simulated(settings: SourceSettings) -> Source:
    return SimulatedSource(_expect(settings, SimulatedSettings))


def _modbus(settings: SourceSettings) -> Source:
    try:
        from edge_agent.sources.modbus.source import ModbusSource
    except ImportError as exc:
        raise _missing(settings, exc) from None
    return ModbusSource(_expect(settings, ModbusSettings))


def _opcua(settings: SourceSettings) -> Source:
    try:
        from edge_agent.sources.opcua.source import OpcUaSource
    except ImportError as exc:
        raise _missing(settings, exc) from None
    return OpcUaSource(_expect(settings, OpcUaSettings))


SOURCES: dict[str, SourceFactory] = {
    "simulated": _simulated,
    "modbus": _modbus,
    "opcua": _opcua,
}


def create_source(settings: SourceSettings) -> Source:
    """Build the source of ``settings.type`` (not yet initialised)."""
    factory = SOURCES.get(settings.type)
    if factory is None:
        raise ConfigError(f"unknown source type {settings.type!r}; known: {sorted(SOURCES)}", field="type")
    return factory(settings)
