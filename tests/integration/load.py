"""Load from real edge agents (simulated machines) in background threads, for fault tests."""

from __future__ import annotations

import threading
from pathlib import Path

from devstack import MosquittoServer
from devstack.agents import agent_config
from edge_agent import Agent
from edge_agent.config import AgentConfig
from ingest.registry import Registry


class AgentLoad:
    """One agent per site publishing ``batches`` batches per device; ``acked`` readings per device after join."""

    def __init__(
        self,
        broker: MosquittoServer,
        registry: Registry,
        sites: list[str],
        state: Path,
        *,
        batches: int,
        interval_ms: int = 10,
        max_readings: int = 10,
    ) -> None:
        self.acked: dict[str, int] = {}
        self.errors: list[BaseException] = []
        self._threads = []
        for site in sites:
            cfg = agent_config(
                registry,
                site,
                mqtt_port=broker.port,
                state_dir=state / site,
                interval_ms=interval_ms,
                max_readings=max_readings,
                max_latency_ms=200,
            )
            agent = Agent(AgentConfig.model_validate(cfg))
            self._threads.append(threading.Thread(target=self._run, args=(agent, batches), daemon=True))

    def _run(self, agent: Agent, batches: int) -> None:
        try:
            agent.run(max_batches_per_device=batches, ack_timeout_s=300)
            for s in agent.stats().values():
                self.acked[s.device_id] = s.readings_acked
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> AgentLoad:
        for t in self._threads:
            t.start()
        return self

    def join(self, timeout: float = 300) -> dict[str, int]:
        for t in self._threads:
            t.join(timeout)
        if self.errors:
            raise self.errors[0]
        return self.acked
