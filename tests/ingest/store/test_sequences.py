"""record_all: batches seen once, gaps opened/shrunk/split/closed, progress counted once, replicas agree."""

from __future__ import annotations

import random
import threading

import psycopg
import pytest

from ingest.store.sequences import record_all


def _record(dsn: str, batches: dict[str, list[tuple[int, int]]]) -> dict[str, list[int]]:
    with psycopg.connect(dsn) as conn, conn.transaction():
        return record_all(conn, batches)


def _gaps(dsn: str, device: str) -> list[tuple[int, int, bool]]:
    """(first, last, open) of every gap row of a device."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT first_missing, last_missing, closed_at IS NULL FROM sequence_gaps WHERE device_id = %s"
            " ORDER BY first_missing, last_missing, closed_at IS NULL",
            (device,),
        ).fetchall()
    return [(f, last, is_open) for f, last, is_open in rows]


def _open(dsn: str, device: str) -> list[tuple[int, int]]:
    return [(f, last) for f, last, is_open in _gaps(dsn, device) if is_open]


def _progress(dsn: str, device: str) -> tuple[int, int, int] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT last_seq, batches, readings FROM device_progress WHERE device_id = %s", (device,)
        ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def test_several_devices_in_one_call(control: str) -> None:
    new = _record(
        control,
        {
            "dev-b": [(3, 1), (1, 2), (2, 4)],
            "dev-a": [(1, 5), (4, 1), (2, 1), (9, 2)],
            "dev-c": [],
        },
    )
    assert new == {"dev-a": [1, 2, 4, 9], "dev-b": [1, 2, 3], "dev-c": []}
    assert list(new) == ["dev-a", "dev-b", "dev-c"]
    assert _open(control, "dev-a") == [(3, 3), (5, 8)]
    assert _open(control, "dev-b") == []
    assert _progress(control, "dev-a") == (9, 4, 9)
    assert _progress(control, "dev-b") == (3, 3, 7)
    assert _progress(control, "dev-c") is None
    assert _record(control, {}) == {}


def test_first_batches_missing_open_a_gap_from_one(control: str) -> None:
    assert _record(control, {"dev-1": [(5, 1), (6, 1)], "dev-2": [(2, 1)], "dev-3": [(1, 1)]}) == {
        "dev-1": [5, 6],
        "dev-2": [2],
        "dev-3": [1],
    }
    assert _open(control, "dev-1") == [(1, 4)]
    assert _open(control, "dev-2") == [(1, 1)]
    assert _open(control, "dev-3") == []


def test_late_batches_shrink_split_and_close_a_gap_across_calls(control: str) -> None:
    _record(control, {"dev": [(1, 1), (10, 1)]})
    assert _open(control, "dev") == [(2, 9)]
    _record(control, {"dev": [(2, 1)]})  # shrink from the front
    assert _open(control, "dev") == [(3, 9)]
    _record(control, {"dev": [(9, 1)]})  # shrink from the back
    assert _open(control, "dev") == [(3, 8)]
    _record(control, {"dev": [(5, 1)]})  # split; the new part keeps the detection time
    assert _open(control, "dev") == [(3, 4), (6, 8)]
    with psycopg.connect(control) as conn:
        assert conn.execute(
            "SELECT count(DISTINCT detected_at) FROM sequence_gaps WHERE device_id = 'dev'"
        ).fetchone() == (1,)
    # one call: 7 splits 6..8, 8 closes the part just split off, 12 opens a gap past the highest
    _record(control, {"dev": [(12, 1), (8, 1), (7, 1)]})
    assert _open(control, "dev") == [(3, 4), (6, 6), (11, 11)]
    assert _gaps(control, "dev") == [(3, 4, True), (6, 6, True), (8, 8, False), (11, 11, True)]
    # one call: 3 shrinks 3..4, then 4, 6 and 11 close theirs
    _record(control, {"dev": [(11, 1), (6, 1), (4, 1), (3, 1)]})
    assert _open(control, "dev") == []
    assert _gaps(control, "dev") == [(4, 4, False), (6, 6, False), (8, 8, False), (11, 11, False)]
    with psycopg.connect(control) as conn:  # the parts of the first gap keep its detection time
        assert conn.execute(
            "SELECT count(DISTINCT detected_at) FROM sequence_gaps WHERE device_id = 'dev' AND first_missing < 11"
        ).fetchone() == (1,)
    assert _progress(control, "dev") == (12, 12, 12)


def test_several_late_batches_in_one_gap_in_one_call(control: str) -> None:
    _record(control, {"dev": [(1, 1), (20, 1)]})
    _record(control, {"dev": [(5, 1), (6, 1), (10, 1), (19, 1), (2, 1)]})
    assert _open(control, "dev") == [(3, 4), (7, 9), (11, 18)]
    assert [g for g in _gaps(control, "dev") if not g[2]] == []


def test_redelivered_batches_are_counted_once(control: str) -> None:
    assert _record(control, {"dev": [(1, 3), (2, 4)], "other": [(1, 1)]}) == {"dev": [1, 2], "other": [1]}
    assert _record(control, {"dev": [(2, 4), (2, 4), (1, 3), (3, 5)], "other": [(1, 1)]}) == {"dev": [3], "other": []}
    assert _progress(control, "dev") == (3, 3, 12)
    assert _progress(control, "other") == (1, 1, 1)
    assert _record(control, {"dev": [(3, 5)]}) == {"dev": []}
    assert _progress(control, "dev") == (3, 3, 12)
    assert _open(control, "dev") == []


def test_runs_in_the_callers_transaction(control: str) -> None:
    with psycopg.connect(control) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            record_all(conn, {"dev": [(1, 1), (5, 1)]})
            raise RuntimeError("rolled back")
        assert conn.execute("SELECT count(*) FROM batches_seen").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM sequence_gaps").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM device_progress").fetchone() == (0,)


def test_concurrent_replicas_agree_on_gaps(control: str) -> None:
    """Two connections record overlapping devices at once, locks in opposite dict orders, seqs shuffled."""
    devices = [f"dev-{i:02d}" for i in range(8)]
    rng = random.Random(7)
    seqs = {d: rng.sample(range(1, 301), 240) for d in devices}  # some seqs never arrive
    rounds = 30
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    returned: list[dict[str, list[int]]] = []

    def replica(mine: list[str], offset: int) -> None:
        try:
            with psycopg.connect(control) as conn:
                for r in range(rounds):
                    batches = {}
                    for d in mine:  # both replicas get each device's seqs, in different chunks
                        chunk = seqs[d][(r * 8 + offset) % 240 : (r * 8 + offset) % 240 + 12]
                        batches[d] = [(s, 2) for s in chunk]
                    barrier.wait(timeout=30)
                    with conn.transaction():
                        returned.append(record_all(conn, batches))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=replica, args=(devices[:6], 0)),
        threading.Thread(target=replica, args=(list(reversed(devices[2:])), 4)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    with psycopg.connect(control) as conn:
        for d in devices:
            seen = {s for (s,) in conn.execute("SELECT seq FROM batches_seen WHERE device_id = %s", (d,))}
            highest = max(seen)
            open_gaps = _open(control, d)
            missing = [s for f, last in open_gaps for s in range(f, last + 1)]
            assert len(missing) == len(set(missing)), f"{d}: overlapping open gaps {open_gaps}"
            assert set(missing) == set(range(1, highest + 1)) - seen, d
            assert _progress(control, d) == (highest, len(seen), 2 * len(seen))
    # every seq was reported new exactly once, by one replica or the other
    reported: dict[str, list[int]] = {d: [] for d in devices}
    for new in returned:
        for d, s in new.items():
            reported[d].extend(s)
    with psycopg.connect(control) as conn:
        for d in devices:
            stored = [
                s for (s,) in conn.execute("SELECT seq FROM batches_seen WHERE device_id = %s ORDER BY seq", (d,))
            ]
            assert sorted(reported[d]) == stored
