"""The ``edge-agent`` command in subprocesses: run, check, signals and the Last Will."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from wire import Status, decode_batch

from .edge_support import REPO, Mosquitto, Subscriber, agent_config_dict, free_port

pytestmark = pytest.mark.integration

STATUS_TOPIC = "status/v1/de-munich/test-gw-01"


def write_config(tmp_path: Path, port: int, **overrides: Any) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent_config_dict(tmp_path, port, **overrides), sort_keys=False))
    return path


def edge_agent(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_agent(env: dict[str, str], config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def status_of(message: Any) -> Status:
    return Status.model_validate_json(message.payload)


def wait_online(sub: Subscriber, proc: subprocess.Popen[str]) -> None:
    if not sub.wait_for(lambda ms: any(m.topic == STATUS_TOPIC and status_of(m).state == "online" for m in ms), 15):
        proc.kill()
        pytest.fail(f"the agent never came online:\n{proc.communicate()[0]}")


def test_run_publishes_n_batches_and_exits_zero(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sub = subscriber_factory(broker.port)
    done = edge_agent(cli_env, "run", "--config", str(write_config(tmp_path, broker.port)), "--batches", "3")
    assert done.returncode == 0, done.stderr
    assert "stopped | de-munich-cnc-01: 3/3 batches acked (30 readings), seq 3" in done.stderr
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 6)
    seqs: dict[str, list[int]] = {}
    for m in sub.on("tele/"):
        batch = decode_batch(m.payload)
        seqs.setdefault(batch.device_id, []).append(batch.seq)
    assert seqs == {"de-munich-cnc-01": [1, 2, 3], "de-munich-press-01": [1, 2, 3]}


def test_check_reports_one_line_per_check(broker: Mosquitto, tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = edge_agent(cli_env, "check", "--config", str(write_config(tmp_path, broker.port)))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok    config",
        "ok    state",
        "ok    source de-munich-cnc-01",
        "ok    source de-munich-press-01",
        "ok    broker",
    ]


def test_check_fails_when_the_broker_is_unreachable(tmp_path: Path, cli_env: dict[str, str]) -> None:
    port = free_port()
    done = edge_agent(cli_env, "check", "--config", str(write_config(tmp_path, port)))
    assert done.returncode == 1
    assert f"FAIL  broker: cannot connect to 127.0.0.1:{port}" in done.stdout
    assert "ok    source de-munich-cnc-01" in done.stdout


def test_bad_config_names_file_line_and_field(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = write_config(tmp_path, 1883)
    config.write_text(config.read_text().replace("machine: cnc_mill", "machine: lathe"))
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "lathe" in text)
    done = edge_agent(cli_env, "check", "--config", str(config))
    assert done.returncode == 2  # an unusable config: 2, as the README says
    assert done.stdout.startswith(f"FAIL  config: {config}:{line}: sources.0.machine: Input should be")
    done = edge_agent(cli_env, "run", "--config", str(config))
    assert done.returncode == 2
    assert f"{config}:{line}: sources.0.machine" in done.stderr


def test_sigterm_stops_cleanly_with_a_shutdown_status(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sub = subscriber_factory(broker.port)
    proc = start_agent(cli_env, write_config(tmp_path, broker.port))
    wait_online(sub, proc)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, output
    assert "SIGTERM received: stopping" in output and "stopped |" in output
    assert sub.wait_for(lambda ms: status_of([m for m in ms if m.topic == STATUS_TOPIC][-1]).state == "offline", 5)
    assert status_of(sub.on(STATUS_TOPIC)[-1]).reason == "shutdown"


def test_last_will_is_published_when_the_agent_dies(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sub = subscriber_factory(broker.port)
    proc = start_agent(cli_env, write_config(tmp_path, broker.port))
    wait_online(sub, proc)
    proc.kill()  # SIGKILL: no chance to say goodbye
    proc.communicate(timeout=10)
    assert sub.wait_for(lambda ms: status_of([m for m in ms if m.topic == STATUS_TOPIC][-1]).state == "offline", 10)
    will = status_of(sub.on(STATUS_TOPIC)[-1])
    assert (will.state, will.reason, will.gateway_id) == ("offline", "connection lost", "test-gw-01")
    late = subscriber_factory(broker.port, client_id="late", topics=(STATUS_TOPIC,))
    assert late.wait_for(lambda ms: len(ms) >= 1)
    assert late.messages[0].retain and status_of(late.messages[0]).reason == "connection lost"


def test_check_reads_each_networked_source_once(tmp_path: Path, cli_env: dict[str, str]) -> None:
    from .servers import ModbusServer

    server = ModbusServer().start()
    try:
        server.set("holding", 0, [421])
        plc = {
            "type": "modbus",
            "device_id": "plc-01",
            "host": "127.0.0.1",
            "port": server.port,
            "timeout_s": 1,
            "registers": [{"field": "speed_rpm", "address": 0}],
        }
        dead = plc | {"device_id": "plc-02", "port": free_port()}
        cfg = agent_config_dict(tmp_path, free_port())
        config = write_config(tmp_path, free_port(), sources=[cfg["sources"][0], plc, dead])
        done = edge_agent(cli_env, "check", "--config", str(config))
    finally:
        server.close()
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "ok    source plc-01: modbus reachable, read 1 field(s): speed_rpm" in lines
    assert any(line.startswith("FAIL  source plc-02: cannot connect to modbus://127.0.0.1:") for line in lines)


def test_status_of_a_stopped_agent_and_of_none(broker: Mosquitto, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.agent import Agent
    from edge_agent.cli import app
    from edge_agent.config import load_config

    runner = CliRunner()
    config = write_config(tmp_path, broker.port)
    never = runner.invoke(app, ["status", "--config", str(config)])
    assert never.exit_code == 1 and "no status file" in never.output
    Agent(load_config(config)).run(max_batches_per_device=2)
    done = runner.invoke(app, ["status", "--config", str(config)])
    assert done.exit_code == 1, done.output  # not running is not healthy
    lines = done.output.splitlines()
    assert lines[0] == f"edge-agent test-gw-01 (site de-munich), state_dir {tmp_path / 'state'}"
    assert lines[1].startswith("agent     : NOT RUNNING (stopped or killed; last status written")
    assert any(line.startswith("publish   : last acknowledged batch") and "ago" in line for line in lines)
    assert "queue     : 0 batch(es), 0 reading(s), 0 B; oldest unsent reading - old" in lines
    assert any(line.startswith("source    : de-munich-cnc-01 (simulated) stopped, ") for line in lines)
    as_json = runner.invoke(app, ["status", "--config", str(config), "--json"])
    doc = json.loads(as_json.output)
    assert doc["alive"] is False and doc["devices"]["de-munich-cnc-01"]["batches_acked"] == 2
    assert doc["queue_now"]["batches"] == 0 and doc["last_publish_at"] is not None
