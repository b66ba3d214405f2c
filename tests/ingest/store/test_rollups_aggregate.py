"""rollups.aggregate_rows / coarsen: the writer's fast path folds rows into rollups without the database."""

from datetime import UTC, datetime, timedelta, timezone

from ingest.store import rollups

T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def test_aggregate_rows_groups_by_device_name_and_minute_and_skips_text() -> None:
    rows = [
        ("d1", "p", T0, 1.0),
        ("d1", "p", T0 + timedelta(seconds=59), 3.0),
        ("d1", "p", T0 + timedelta(seconds=60), 5.0),
        ("d1", "q", T0, -2.0),
        ("d2", "p", T0, 7.0),
        ("d1", "badge", T0, None),
    ]
    agg = rollups.aggregate_rows(rows, device=0, name=1, ts=2, num=3)
    assert agg == {
        ("d1", "p", _epoch(T0)): [2, 4.0, 1.0, 3.0],
        ("d1", "p", _epoch(T0) + 60): [1, 5.0, 5.0, 5.0],
        ("d1", "q", _epoch(T0)): [1, -2.0, -2.0, -2.0],
        ("d2", "p", _epoch(T0)): [1, 7.0, 7.0, 7.0],
    }


def test_aggregate_rows_is_exact_just_before_a_boundary_and_with_offsets() -> None:
    just_before = T0 - timedelta(microseconds=1)
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))  # the same instant, another offset
    agg = rollups.aggregate_rows(
        [("d", "p", just_before, 1.0), ("d", "p", plus_two, 2.0)], device=0, name=1, ts=2, num=3
    )
    assert agg == {("d", "p", _epoch(T0) - 60): [1, 1.0, 1.0, 1.0], ("d", "p", _epoch(T0)): [1, 2.0, 2.0, 2.0]}


def test_coarsen_to_hours_matches_aggregating_the_rows_per_hour() -> None:
    rows = [("d", "p", T0 + timedelta(minutes=m), float(m % 7) - 3) for m in range(-30, 150, 7)]
    minute = rollups.aggregate_rows(rows, device=0, name=1, ts=2, num=3)
    hour = rollups.coarsen(minute, 3600)
    expected: dict[tuple[str, str, int], list[float]] = {}
    for _, _, at, value in rows:
        key = ("d", "p", _epoch(rollups.floor_to(at, timedelta(hours=1))))
        a = expected.setdefault(key, [0, 0.0, value, value])
        a[0] += 1
        a[1] += value
        a[2], a[3] = min(a[2], value), max(a[3], value)
    assert hour == expected
    assert sum(v[0] for v in hour.values()) == len(rows)
