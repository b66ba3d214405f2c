"""Sources of readings (one per device): the protocol, the registry and the built-in types."""

from edge_agent.sources.base import Source, SourceSettings
from edge_agent.sources.registry import SOURCES, create_source

__all__ = ["SOURCES", "Source", "SourceSettings", "create_source"]
