"""OPC UA source plugin: ``settings`` (config model) and ``source`` (asyncua client, imported only
when an opcua source is configured). See ``README.md`` and ``sample.yaml`` in this folder."""

from edge_agent.sources.opcua.settings import OpcUaNode, OpcUaSecurity, OpcUaSettings

__all__ = ["OpcUaNode", "OpcUaSecurity", "OpcUaSettings"]
