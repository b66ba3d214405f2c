"""Store and forward against a real Mosquitto: a broker outage under load, ``kill -9`` of the agent
while it publishes, and a full queue under both policies (what is kept, and that it says so)."""

from __future__ import annotations

import itertools
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.sequence import DB_NAME
from edge_agent.status import format_status, read_status
from wire import Batch, decode_batch

from .edge_support import REPO, Mosquitto, Subscriber, agent_config_dict

pytestmark = pytest.mark.integration

CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"


def first_arrivals(sub: Subscriber) -> dict[str, list[Batch]]:
    """Each device's batches in the order they first arrived (re-deliveries of a seq are skipped)."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, list[Batch]] = {}
    for m in sub.on("tele/"):
        batch = decode_batch(m.payload)
        if (batch.device_id, batch.seq) not in seen:
            seen.add((batch.device_id, batch.seq))
            out.setdefault(batch.device_id, []).append(batch)
    return out


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_broker_outage_under_load_loses_and_reorders_nothing(
    persistent_broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    sub = subscriber_factory(persistent_broker.port, client_id="durable-sub", persistent=True)
    cfg = AgentConfig.model_validate(agent_config_dict(tmp_path, persistent_broker.port))
    agent = Agent(cfg)
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(agent.run(max_batches_per_device=40, ack_timeout_s=30)))
    runner.start()
    wait_until(lambda: min(s.batches_acked for s in agent.stats().values()) >= 5, 15, "first acks")
    persistent_broker.stop()  # the subscriber's session and its queued messages are saved
    time.sleep(1.5)  # ~150 readings per device pile up in the disk queue
    queued = agent.queue_snapshot()
    assert queued is not None and queued.batches > 0
    persistent_broker.start()
    runner.join(40)
    assert not runner.is_alive() and isinstance(result[0], dict), result
    assert sub.wait_for(lambda ms: len({(m.topic, m.payload) for m in ms if m.topic.startswith("tele/")}) >= 80, 15)
    got = first_arrivals(sub)
    for device in (CNC, PRESS):
        batches = got[device]
        assert [b.seq for b in batches] == list(range(1, 41)), device  # complete, and in order
        readings = [r for b in batches for r in b.readings]
        assert len(readings) == 400
        gaps = {round((b.ts - a.ts).total_seconds() * 1000) for a, b in itertools.pairwise(readings)}
        assert gaps == {10}, f"{device}: a reading is missing or out of order"


def write_config(path: Path, tmp_path: Path, port: int, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(agent_config_dict(tmp_path, port, **overrides), sort_keys=False))
    return path


def test_kill_9_while_publishing_loses_nothing(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sub = subscriber_factory(broker.port)
    sources = agent_config_dict(tmp_path, broker.port)["sources"]
    for source in sources:
        source["interval_ms"] = 5  # 200 readings/s per device: 40 batches/s in all
    # The first run may publish only 15 messages/s, so a backlog builds up in the disk queue.
    throttled = write_config(
        tmp_path / "throttled.yaml",
        tmp_path,
        broker.port,
        sources=sources,
        publish={"max_messages_per_s": 15, "burst": 5},
    )
    normal = write_config(tmp_path / "normal.yaml", tmp_path, broker.port, sources=sources)

    def start(config: Path) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "edge_agent", "run", "--config", str(config), "--report-every", "0.5"]
        return subprocess.Popen(
            argv, cwd=REPO, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    proc = start(throttled)
    if not sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 15, 20):
        proc.kill()
        pytest.fail(f"the agent published nothing:\n{proc.communicate()[0]}")
    proc.kill()  # SIGKILL while batches are in flight and dozens wait in the queue
    first_output = proc.communicate(timeout=10)[0]
    db = sqlite3.connect(tmp_path / "state" / DB_NAME)
    backlog = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    db.close()
    assert backlog > 5, first_output  # the kill really left unsent batches behind

    proc = start(normal)  # restart: replays the backlog first, then carries on
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    assert "batch(es) to replay" in output
    db = sqlite3.connect(tmp_path / "state" / DB_NAME)
    last = dict(db.execute("SELECT device_id, last_seq FROM device_seq").fetchall())
    left = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    db.close()
    assert left == 0, output  # everything was acknowledged before the clean stop
    expected = {(d, s) for d, n in last.items() for s in range(1, n + 1)}
    assert sub.wait_for(lambda ms: expected <= {(b.device_id, b.seq) for b in map(decode_batch, _tele(ms))}, 10)
    assert set(last) == {CNC, PRESS} and min(last.values()) >= 10


def _tele(messages: list[Any]) -> list[bytes]:
    return [m.payload for m in messages if m.topic.startswith("tele/")]


@pytest.mark.parametrize("when_full", ["drop_oldest", "reject_new"])
def test_a_full_queue_keeps_what_its_policy_says_and_reports_it(
    persistent_broker: Mosquitto,
    subscriber_factory: Callable[..., Subscriber],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    when_full: str,
) -> None:
    sub = subscriber_factory(persistent_broker.port, client_id="full-sub", persistent=True)
    persistent_broker.stop()  # the agent starts while the broker is down
    cfg = AgentConfig.model_validate(
        agent_config_dict(tmp_path, persistent_broker.port, queue={"max_batches": 5, "when_full": when_full})
    )
    agent = Agent(cfg)
    result: list[Any] = []
    caplog.set_level(logging.WARNING, logger="edge_agent")
    runner = threading.Thread(target=lambda: result.append(agent.run(max_batches_per_device=6, ack_timeout_s=20)))
    runner.start()
    wait_until(lambda: all(s.batches_built == 6 for s in agent.stats().values()), 15, "12 batches built")
    snapshot = agent.queue_snapshot()
    assert snapshot is not None and snapshot.batches == 5
    persistent_broker.start()
    runner.join(30)
    assert not runner.is_alive()
    stats = result[0]
    lost = 12 - 5
    if when_full == "drop_oldest":
        assert sum(s.batches_dropped for s in stats.values()) == lost
        assert sum(s.batches_refused for s in stats.values()) == 0
        assert "queue full" in caplog.text and "oldest unsent batch(es)" in caplog.text
    else:
        assert sum(s.batches_refused for s in stats.values()) == lost
        assert sum(s.batches_dropped for s in stats.values()) == 0
        assert "queue full" in caplog.text and "new batch(es)" in caplog.text
    assert all(s.last_seq == 6 for s in stats.values())
    assert sub.wait_for(lambda ms: len(_tele(ms)) >= 5, 10)
    time.sleep(0.3)
    got = first_arrivals(sub)
    kept = {d: [b.seq for b in bs] for d, bs in got.items()}
    assert sum(len(v) for v in kept.values()) == 5
    for seqs in kept.values():
        if when_full == "drop_oldest":  # the newest batches survive: each device keeps a suffix
            assert seqs == list(range(7 - len(seqs), 7))
        else:  # the oldest survive: each device keeps a prefix
            assert seqs == list(range(1, len(seqs) + 1))
    doc = read_status(tmp_path / "state")
    assert doc is not None and doc["state"] == "stopped"
    q = doc["queue"]
    assert (q["evicted_batches"], q["refused_batches"]) == ((lost, 0) if when_full == "drop_oldest" else (0, lost))
    lines, healthy = format_status(doc, None, alive=False)
    assert not healthy and any(line.startswith("QUEUE FULL:") for line in lines)
