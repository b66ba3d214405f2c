"""Publish options: gzip compression (and how it is signalled), the token-bucket rate limit."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable

import pytest

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.publisher import GZIP_CONTENT_TYPE
from edge_agent.ratelimit import TokenBucket
from wire import decode_batch

from .edge_support import Mosquitto, Subscriber


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 5, clock=clock)
    assert bucket.available() == 5
    bucket.take(5)
    assert bucket.available() == 0 and bucket.wait_s() == pytest.approx(0.1)
    clock.t += 0.25
    assert bucket.available() == 2
    clock.t += 100
    assert bucket.available() == 5  # never more than the burst
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


@pytest.mark.integration
def test_gzip_payloads_are_signalled_and_decode(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    sub = subscriber_factory(broker.port)
    cfg = make_config(broker.port, publish={"compression": "gzip", "compression_level": 9})
    stats = Agent(cfg).run(max_batches_per_device=3)
    assert all(s.batches_acked == 3 for s in stats.values())
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 6)
    for m in sub.on("tele/"):
        assert m.payload[:2] == b"\x1f\x8b"  # gzip magic: never the first bytes of JSON
        assert m.content_type == GZIP_CONTENT_TYPE == "application/json+gzip"
        assert ("content-encoding", "gzip") in m.user_properties
        raw = gzip.decompress(m.payload)
        assert len(raw) > len(m.payload)
        assert len(decode_batch(raw).readings) == 10
    plain = sub.on("status/")
    assert plain and all(m.content_type is None for m in plain)  # status messages stay plain JSON


@pytest.mark.integration
def test_a_rate_limited_agent_still_delivers_everything_in_order(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    sub = subscriber_factory(broker.port)
    cfg = make_config(broker.port, publish={"max_messages_per_s": 50, "burst": 2})
    stats = Agent(cfg).run(max_batches_per_device=4)
    assert all(s.batches_acked == 4 for s in stats.values())
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 8)
    seqs: dict[str, list[int]] = {}
    for m in sub.on("tele/"):
        batch = decode_batch(m.payload)
        seqs.setdefault(batch.device_id, []).append(batch.seq)
    assert all(v == [1, 2, 3, 4] for v in seqs.values())


@pytest.mark.integration
def test_batches_nobody_subscribed_to_are_kept_until_someone_does(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], make_config: Callable[..., AgentConfig]
) -> None:
    """The default: a PUBACK 'no matching subscribers' (no ingest yet) is not a delivery."""
    broker_settings = {"port": broker.port, "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.3}}
    cfg = make_config(broker.port, broker=broker_settings)  # retry_unrouted: true (default)
    assert cfg.broker.retry_unrouted
    agent = Agent(cfg)
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(agent.run(max_batches_per_device=3, ack_timeout_s=20)))
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(s.batches_unrouted for s in agent.stats().values()) < 2:
        time.sleep(0.02)
    stats = agent.stats()
    assert sum(s.batches_unrouted for s in stats.values()) >= 2
    assert all(s.batches_acked == 0 for s in stats.values())  # nothing counts as delivered yet
    sub = subscriber_factory(broker.port)  # the ingest subscribes, late
    runner.join(30)
    assert not runner.is_alive() and isinstance(result[0], dict)
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 6, 10)
    seqs: dict[str, list[int]] = {}
    for m in sub.on("tele/"):
        batch = decode_batch(m.payload)
        seqs.setdefault(batch.device_id, []).append(batch.seq)
    assert all(v == [1, 2, 3] for v in seqs.values()) and len(seqs) == 2  # all of them, in order
