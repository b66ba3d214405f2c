"""The edge agent a factory gateway runs: machines (simulated, Modbus TCP, OPC UA) -> batches ->
pseudonymization -> durable SQLite queue with per-device sequences -> MQTT v5 (QoS 1).

Typical use::

    from edge_agent import Agent, load_config

    agent = Agent(load_config("agent.yaml"))
    agent.run(stop_event)            # or agent.run(max_batches_per_device=10)
    print(agent.stats())
"""

from edge_agent.agent import Agent, DeviceStats
from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import AgentError, ConfigError, PublishError, SourceError, StateError

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "ConfigError",
    "DeviceStats",
    "PublishError",
    "SourceError",
    "StateError",
    "load_config",
]
