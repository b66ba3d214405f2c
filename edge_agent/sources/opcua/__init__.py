"""OPC UA source plugin: ``settings`` (config model) and ``source`` (asyncua client, imported only
when an opcua source is configured). See ``README.md`` and ``sample.yaml`` in this folder."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.sources.base import Source, SourcePlugin
from edge_agent.sources.opcua.settings import OpcUaNode, OpcUaSecurity, OpcUaSettings

__all__ = ["PLUGIN", "OpcUaNode", "OpcUaSecurity", "OpcUaSettings"]


def _load() -> Callable[[OpcUaSettings], Source]:
    from edge_agent.sources.opcua.source import OpcUaSource  # imports asyncua

    return OpcUaSource


PLUGIN = SourcePlugin(OpcUaSettings, _load)
"""The registration of this folder's source type (edge_agent/sources/registry.py lists it)."""
