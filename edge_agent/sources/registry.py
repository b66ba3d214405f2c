"""Source types by name: one registration per plugin folder, listed here once (no import magic).

Each plugin folder's ``__init__.py`` defines ``PLUGIN`` (:class:`~edge_agent.sources.base.SourcePlugin`): its
settings model, whose ``type`` Literal names the type, and a loader of its source class. :data:`PLUGINS`
builds both the agent config's discriminated union of source settings (:data:`AnySourceSettings`, used by
:mod:`edge_agent.config`) and the runtime registry (:data:`SOURCES`, :func:`create_source`).

Plugins that need a protocol library (pymodbus, asyncua) import it only when a source of their type is
created, so a gateway that uses none of them never loads them (memory footprint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from edge_agent.errors import ConfigError
from edge_agent.sources import modbus, opcua, simulated
from edge_agent.sources.base import Source, SourcePlugin, SourceSettings

__all__ = ["PLUGINS", "SOURCES", "SOURCE_TYPES", "AnySourceSettings", "create_source"]

PLUGINS: tuple[SourcePlugin[Any], ...] = (simulated.PLUGIN, modbus.PLUGIN, opcua.PLUGIN)
"""Every source type the agent knows, in the order the config's error messages list them."""

SOURCES: dict[str, SourcePlugin[Any]] = {plugin.type: plugin for plugin in PLUGINS}
SOURCE_TYPES: tuple[str, ...] = tuple(SOURCES)
if len(SOURCES) != len(PLUGINS):
    raise RuntimeError(f"two source plugins register the same type: {[p.type for p in PLUGINS]}")

if TYPE_CHECKING:
    AnySourceSettings = SourceSettings
else:  # one member per plugin; ``type`` selects the model (and the error messages list the types)
    AnySourceSettings = Annotated[Union[tuple(p.settings for p in PLUGINS)], Field(discriminator="type")]  # noqa: UP007


def create_source(settings: SourceSettings) -> Source:
    """Build the source of ``settings.type`` (not yet initialised)."""
    plugin = SOURCES.get(settings.type)
    if plugin is None:
        raise ConfigError(f"unknown source type {settings.type!r}; known: {sorted(SOURCES)}", field="type")
    return plugin.create(settings)
