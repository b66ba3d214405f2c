"""The CPU ceilings printed next to the ratio goals (bench/ingest/ceilings.py)."""

from __future__ import annotations

import pytest

from bench.ingest.ceilings import cpu_seconds_per_unit, g3_ceiling, replicas_ceiling


def test_cpu_seconds_per_unit_is_busy_cpus_over_rate() -> None:
    # 2 CPUs, 50 % busy, 1,000 units/s: one CPU-second per second spread over 1,000 units
    assert cpu_seconds_per_unit(1000, 0.5, 2) == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("rate", "busy", "cpus", "what"),
    [
        (0, 0.5, 2, "rate"),
        (-1, 0.5, 2, "rate"),
        (10, 1.5, 2, "busy"),
        (10, -0.1, 2, "busy"),
        (10, 0.5, 0, "cpus"),
    ],
)
def test_cpu_seconds_per_unit_names_the_bad_argument(rate: float, busy: float, cpus: int, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        cpu_seconds_per_unit(rate, busy, cpus)


def test_g3_ceiling_adds_the_per_message_costs() -> None:
    # bare subscriber: 10,000 msg/s with 2 CPUs 50 % busy -> 100 us per message;
    # rows: 100,000 rows/s with 2 CPUs 50 % busy -> 10 us per row, 5 rows per message -> 50 us;
    # route 50 us: 200 us per message -> 2 CPUs allow 10,000 msg/s = 1.0 x the bare subscriber
    c = g3_ceiling(
        cpus=2, bare_rate=10_000, bare_busy=0.5, route_us_per_msg=50, rows_per_msg=5, copy_rate=100_000, copy_busy=0.5
    )
    assert c.bare_us_per_msg == pytest.approx(100)
    assert c.copy_us_per_row == pytest.approx(10)
    assert c.ratio == pytest.approx(1.0)
    # a costlier route lowers the ceiling: 300 us per message -> 6,667 msg/s
    dearer = g3_ceiling(
        cpus=2, bare_rate=10_000, bare_busy=0.5, route_us_per_msg=150, rows_per_msg=5, copy_rate=100_000, copy_busy=0.5
    )
    assert dearer.ratio == pytest.approx(2 / 3)
    assert "5.0 rows x 10.0 us" in dearer.detail()


def test_g3_ceiling_refuses_negative_costs() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        g3_ceiling(cpus=2, bare_rate=1, bare_busy=0.5, route_us_per_msg=-1, rows_per_msg=1, copy_rate=1, copy_busy=0.5)


def test_replicas_ceiling_is_the_idle_share() -> None:
    assert replicas_ceiling(0.5) == pytest.approx(2.0)
    assert replicas_ceiling(0.8) == pytest.approx(1.25)
    assert replicas_ceiling(1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="busy share"):
        replicas_ceiling(0)
