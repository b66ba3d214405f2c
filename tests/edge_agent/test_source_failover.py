"""A Modbus device goes away and comes back while the agent runs: the simulated source keeps
publishing, the failure is retried with backoff and reported (stats, status.json, ``edge-agent
status`` from another process), and Modbus readings resume when the server is back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.sources.modbus.codec import encode
from edge_agent.status import read_status
from wire import decode_batch

from .edge_support import REPO, Mosquitto, Subscriber, agent_config_dict
from .servers import ModbusServer

pytestmark = pytest.mark.integration

SIM, PLC = "de-munich-cnc-01", "de-munich-plc-01"


@pytest.fixture
def modbus() -> Iterator[ModbusServer]:
    server = ModbusServer().start()
    yield server
    server.close()


def plc_temps(sub: Subscriber) -> list[float]:
    found = [
        r.values["oil_temp_c"] for m in sub.on(f"tele/v1/de-munich/{PLC}") for r in decode_batch(m.payload).readings
    ]
    temps = [t for t in found if isinstance(t, float)]
    assert temps == found, found
    return temps


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_modbus_outage_is_retried_reported_and_survived(
    broker: Mosquitto,
    modbus: ModbusServer,
    subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
    cli_env: dict[str, str],
) -> None:
    modbus.set("input", 0, encode(215, "int16"))
    data: dict[str, Any] = agent_config_dict(tmp_path, broker.port, batch={"max_readings": 10, "max_latency_ms": 150})
    data["status_interval_s"] = 0.2
    data["sources"] = [
        data["sources"][0],
        {
            "type": "modbus",
            "device_id": PLC,
            "host": "127.0.0.1",
            "port": modbus.port,
            "interval_ms": 50,
            "timeout_s": 0.5,
            "registers": [{"field": "oil_temp_c", "table": "input", "address": 0, "type": "int16", "scale": 0.1}],
        },
    ]
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    sub = subscriber_factory(broker.port)
    agent = Agent(AgentConfig.model_validate(data), source_retry_s=(0.1, 0.3))
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    runner.start()
    try:
        wait_until(lambda: 21.5 in plc_temps(sub), 10, "the first Modbus readings")
        modbus.stop()
        wait_until(lambda: agent.sources_health()[PLC].consecutive_failures >= 2, 10, "the failure to be noticed")
        acked = agent.stats()[SIM].readings_acked
        wait_until(lambda: agent.stats()[SIM].readings_acked >= acked + 30, 10, "the simulated source to go on")
        health = agent.sources_health()[PLC]
        assert health.state == "failing" and health.retry_at is not None
        assert "modbus://127.0.0.1" in (health.last_error or "")
        assert agent.stats()[PLC].source_errors >= 2
        wait_until(
            lambda: (
                ((read_status(tmp_path / "state") or {}).get("sources") or {}).get(PLC, {}).get("state") == "failing"
            ),
            5,
            "status.json to show the failing source",
        )
        status = subprocess.run(
            [sys.executable, "-m", "edge_agent", "status", "--config", str(config_file)],
            cwd=REPO,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 1, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert any(line.startswith("agent     : running") for line in lines), status.stdout
        assert any(line.startswith("broker    : connected to 127.0.0.1") for line in lines), status.stdout
        assert any(line.startswith("queue     : ") and "oldest unsent reading" in line for line in lines)
        assert any(f"{SIM} (simulated) ok" in line for line in lines), status.stdout
        assert any(f"{PLC} (modbus) failing" in line and "FAILING x" in line for line in lines), status.stdout

        modbus.start()  # the PLC is back, on the same port, with a new value
        modbus.set("input", 0, encode(230, "int16"))
        wait_until(lambda: 23.0 in plc_temps(sub), 10, "Modbus readings to resume")
        assert agent.sources_health()[PLC].state == "ok"
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    batches = [decode_batch(m.payload) for m in sub.on(f"tele/v1/de-munich/{PLC}")]
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
