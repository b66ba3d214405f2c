"""Batching per device by count and by latency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.batcher import Batcher
from wire import Reading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading(ts=T0 + timedelta(seconds=start + i), values={"x": float(start + i)}) for i in range(n)]


def test_cut_by_count() -> None:
    b = Batcher(max_readings=3, max_latency_s=10, clock=Clock())
    assert b.add("a", readings(2)) == []
    ready = b.add("a", readings(5, start=2))
    assert [len(r.readings) for r in ready] == [3, 3]
    assert [r.readings[0].values["x"] for r in ready] == [0.0, 3.0]
    assert {r.reason for r in ready} == {"count"} and all(r.device_id == "a" for r in ready)
    assert b.buffered("a") == 1


def test_devices_are_batched_separately() -> None:
    b = Batcher(max_readings=2, max_latency_s=10, clock=Clock())
    assert b.add("a", readings(1)) == []
    assert b.add("b", readings(1)) == []
    ready = b.add("a", readings(1, start=1))
    assert [(r.device_id, len(r.readings)) for r in ready] == [("a", 2)]
    assert b.buffered("b") == 1


def test_cut_by_latency_measured_from_the_oldest_buffered_reading() -> None:
    clock = Clock()
    b = Batcher(max_readings=100, max_latency_s=1.0, clock=clock)
    assert b.next_due_in() is None
    b.add("a", readings(1))
    clock.t = 0.6
    b.add("a", readings(1, start=1))
    assert b.due() == []
    assert b.next_due_in() == pytest.approx(0.4)
    clock.t = 1.0
    ready = b.due()
    assert [(r.reason, len(r.readings)) for r in ready] == [("latency", 2)]
    assert b.due() == [] and b.next_due_in() is None


def test_latency_clock_restarts_after_a_count_cut() -> None:
    clock = Clock()
    b = Batcher(max_readings=2, max_latency_s=1.0, clock=clock)
    b.add("a", readings(2))  # cut by count at t=0
    clock.t = 0.9
    b.add("a", readings(1, start=2))
    clock.t = 1.5
    assert b.due() == []  # the buffered reading has waited 0.6 s only
    clock.t = 2.0
    assert len(b.due()) == 1


def test_flush_and_discard() -> None:
    b = Batcher(max_readings=10, max_latency_s=5, clock=Clock())
    b.add("a", readings(3))
    b.add("b", readings(2))
    assert b.discard("b") == 2
    ready = b.flush()
    assert [(r.device_id, len(r.readings), r.reason) for r in ready] == [("a", 3, "flush")]
    assert b.flush() == []


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        Batcher(max_readings=0, max_latency_s=1)
