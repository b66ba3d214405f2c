"""The agent end to end against a real Mosquitto, in-process."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from edge_agent.agent import Agent, DeviceStats
from edge_agent.config import AgentConfig
from edge_agent.errors import PublishError
from edge_agent.sources.simulated import SimulatedSettings, SimulatedSource
from wire import Batch, DataTopic, Reading, Status, decode_batch

from .edge_support import Mosquitto, Subscriber, free_port

pytestmark = pytest.mark.integration

CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"


def batches(sub: Subscriber) -> dict[str, list[Batch]]:
    """Decoded batches per device (topic checked against the payload)."""
    out: dict[str, list[Batch]] = {}
    for m in sub.on("tele/"):
        topic = DataTopic.parse(m.topic)
        batch = decode_batch(m.payload)
        assert batch.device_id == topic.device_id and topic.site_id == "de-munich"
        assert m.qos == 1
        out.setdefault(batch.device_id, []).append(batch)
    return out


def statuses(sub: Subscriber, *, live_only: bool = False) -> list[tuple[str, str | None]]:
    """(state, reason) of the status messages received, optionally without retained replays."""
    messages = [m for m in sub.on("status/") if not (live_only and m.retain)]
    return [(s.state, s.reason) for s in (Status.model_validate_json(m.payload) for m in messages)]


def has_data(n: int) -> Callable[[list[Any]], bool]:
    return lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= n


def test_each_device_publishes_exactly_n_contiguous_batches(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    sub = subscriber_factory(broker.port)
    stats = Agent(make_config(broker.port)).run(max_batches_per_device=5)
    assert sub.wait_for(lambda ms: has_data(10)(ms) and len([m for m in ms if m.topic.startswith("status/")]) >= 2)
    got = batches(sub)
    assert sorted(got) == [CNC, PRESS]
    for device, device_batches in got.items():
        assert [b.seq for b in device_batches] == [1, 2, 3, 4, 5]
        readings = [r for b in device_batches for r in b.readings]
        assert all(len(b.readings) == 10 for b in device_batches)
        gaps = {round((b.ts - a.ts).total_seconds() * 1000) for a, b in itertools.pairwise(readings)}
        assert gaps == {10}, "readings lost or reordered between batches"
        assert all(b.origin is not None and b.origin.country == "DE" for b in device_batches)
        assert stats[device] == DeviceStats(
            device_id=device,
            batches_built=5,
            batches_published=5,
            readings_published=50,
            batches_acked=5,
            readings_acked=50,
            batches_republished=0,
            batches_rejected=0,
            batches_dropped=0,
            batches_refused=0,
            readings_dropped=0,
            batches_unrouted=0,
            last_seq=5,
            source_errors=0,
            last_source_error=None,
        )
    assert all("operator_badge" in r.values for b in got[CNC] for r in b.readings)
    assert "spindle_speed_rpm" in got[CNC][0].readings[0].values
    assert "barrel_temp_c" in got[PRESS][0].readings[0].values
    assert statuses(sub) == [("online", None), ("offline", "shutdown")]


def test_sequence_continues_after_a_restart(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    cfg = make_config(broker.port)
    Agent(cfg).run(max_batches_per_device=3)
    sub = subscriber_factory(broker.port)
    stats = Agent(cfg).run(max_batches_per_device=3)  # same state_dir: a restarted agent
    assert stats[CNC].last_seq == 6
    assert sub.wait_for(has_data(6))
    assert {d: [b.seq for b in bs] for d, bs in batches(sub).items()} == {CNC: [4, 5, 6], PRESS: [4, 5, 6]}


def test_birth_is_retained_while_running_and_offline_after_stop(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    agent = Agent(make_config(broker.port, batch={"max_readings": 1000, "max_latency_ms": 100}))
    stop = threading.Event()
    result: list[dict[str, DeviceStats]] = []
    runner = threading.Thread(target=lambda: result.append(agent.run(stop)))
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while not agent.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.connected
        late = subscriber_factory(broker.port, client_id="late-1", topics=("status/v1/#",))
        assert late.wait_for(lambda ms: len(ms) >= 1)
        birth = late.messages[0]
        assert birth.retain and birth.topic == "status/v1/de-munich/test-gw-01"
        status = Status.model_validate_json(birth.payload)
        assert (status.state, status.devices) == ("online", [CNC, PRESS])
        time.sleep(0.3)  # let a few latency-cut batches go out
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    stats = result[0]
    assert all(s.batches_acked == s.batches_built > 0 for s in stats.values())  # flushed and acked on stop
    after = subscriber_factory(broker.port, client_id="late-2", topics=("status/v1/#",))
    assert after.wait_for(lambda ms: len(ms) >= 1)
    assert after.messages[0].retain
    assert Status.model_validate_json(after.messages[0].payload).reason == "shutdown"


class FlakySource:
    """A simulated source whose first ``failures`` reads raise."""

    def __init__(self, inner: SimulatedSource, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    @property
    def device_id(self) -> str:
        return self.inner.device_id

    @property
    def poll_interval_s(self) -> float:
        return self.inner.poll_interval_s

    def init(self) -> None:
        self.inner.init()

    def start(self) -> None:
        self.inner.start()

    def read(self) -> list[Reading]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("PLC not answering")
        return self.inner.read()

    def stop(self) -> None:
        self.inner.stop()


def test_a_failing_source_is_retried_without_stopping_the_others(
    broker: Mosquitto, make_config: Callable[..., AgentConfig]
) -> None:
    cfg = make_config(broker.port)
    assert isinstance(cfg.sources[0], SimulatedSettings) and isinstance(cfg.sources[1], SimulatedSettings)
    flaky = FlakySource(SimulatedSource(cfg.sources[0]), failures=2)
    agent = Agent(cfg, sources=[flaky, SimulatedSource(cfg.sources[1])], source_retry_s=(0.05, 0.1))
    stats = agent.run(max_batches_per_device=3)
    assert stats[CNC].source_errors == 2
    assert stats[CNC].last_source_error == "ConnectionError: PLC not answering"
    assert stats[CNC].batches_acked == 3 and stats[PRESS].batches_acked == 3
    assert stats[PRESS].source_errors == 0


def test_unacknowledged_batches_raise_publish_error(make_config: Callable[..., AgentConfig]) -> None:
    agent = Agent(make_config(free_port(), batch={"max_readings": 5, "max_latency_ms": 50}))
    started = time.monotonic()
    with pytest.raises(PublishError, match=r"not acknowledged within 1\.0 s") as info:
        agent.run(max_batches_per_device=2, ack_timeout_s=1.0)
    assert time.monotonic() - started < 6
    assert info.value.unacked == {CNC: 2, PRESS: 2}
    assert "cannot connect" in str(info.value)


def test_reconnects_after_a_broker_restart_and_loses_nothing(
    persistent_broker: Mosquitto,
    subscriber_factory: Callable[..., Subscriber],
    make_config: Callable[..., AgentConfig],
) -> None:
    sub = subscriber_factory(persistent_broker.port, client_id="durable-sub", persistent=True)
    agent = Agent(make_config(persistent_broker.port))
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(agent.run(max_batches_per_device=30, ack_timeout_s=20))
        except Exception as exc:
            result.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and min(s.batches_acked for s in agent.stats().values()) < 5:
        time.sleep(0.02)
    persistent_broker.stop()  # SIGTERM: the broker saves the subscriber's session
    time.sleep(0.7)  # batches pile up in the outbox meanwhile
    persistent_broker.start()
    runner.join(30)
    assert not runner.is_alive()
    stats = result[0]
    assert isinstance(stats, dict), stats
    for device in (CNC, PRESS):
        assert stats[device].batches_acked == 30 and stats[device].last_seq == 30
    assert sub.wait_for(lambda ms: len({(m.topic, m.payload) for m in ms if m.topic.startswith("tele/")}) >= 60, 15)
    for device, device_batches in batches(sub).items():
        assert sorted({b.seq for b in device_batches}) == list(range(1, 31)), device  # duplicates allowed, no gaps
    live = statuses(sub, live_only=True)  # the re-subscription also replays the retained status
    assert live.count(("online", None)) == 2  # a birth on every connect
    assert live[-1] == ("offline", "shutdown")
