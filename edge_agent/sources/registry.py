"""Source types by name: an explicit map from the config's ``type`` to a factory (no import magic)."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.errors import ConfigError
from edge_agent.sources.base import Source, SourceSettings
from edge_agent.sources.simulated import SimulatedSettings, SimulatedSource

__all__ = ["SOURCES", "SourceFactory", "create_source"]

SourceFactory = Callable[[SourceSettings], Source]


def _simulated(settings: SourceSettings) -> Source:
    if not isinstance(settings, SimulatedSettings):
        raise TypeError(f"expected SimulatedSettings, got {type(settings).__name__}")
    return SimulatedSource(settings)


SOURCES: dict[str, SourceFactory] = {
    "simulated": _simulated,
}


def create_source(settings: SourceSettings) -> Source:
    """Build the source of ``settings.type`` (not yet initialised)."""
    factory = SOURCES.get(settings.type)
    if factory is None:
        raise ConfigError(f"unknown source type {settings.type!r}; known: {sorted(SOURCES)}", field="type")
    return factory(settings)
