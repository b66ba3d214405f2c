"""Simulated source plugin: ``settings`` (config model), ``machines`` and ``physics`` (the machine models),
``source`` (the sampling grid). No library is needed. See ``README.md`` and ``sample.yaml`` in this folder."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.sources.base import Source, SourcePlugin
from edge_agent.sources.simulated.settings import SimulatedSettings
from edge_agent.sources.simulated.source import MAX_CATCH_UP, SimulatedSource

__all__ = ["MAX_CATCH_UP", "PLUGIN", "SimulatedSettings", "SimulatedSource"]


def _load() -> Callable[[SimulatedSettings], Source]:
    return SimulatedSource


PLUGIN = SourcePlugin(SimulatedSettings, _load)
"""The registration of this folder's source type (edge_agent/sources/registry.py lists it)."""
