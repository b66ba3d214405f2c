"""Gaps after a grace period: claims that do not open gaps for holes that may still fill, and the sweep
(open_due_gaps) that opens those still missing (ingest.store.sequences, docs/message-isolation.md)."""

from __future__ import annotations

import random

import psycopg

from ingest.store.sequences import Claim, JumpBound, SequenceClaimer, claim_all, open_due_gaps, record_all
from tests.ingest.store.test_sequences import _open as open_gaps

BOUND = JumpBound(allowance=1000, rate=10.0)


def _claim(dsn: str, seqs: list[int], device: str = "dev", *, immediate: bool = False) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        verdicts = claim_all(conn, [Claim(device, s, 1, b"d%d" % s) for s in seqs], BOUND, immediate=immediate)
    assert set(verdicts) <= {"new", "seen"}


def _sweep(dsn: str, grace_s: float = 0.0) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn, conn.transaction():
        opened, moved, last = open_due_gaps(conn, grace_s)
    assert last is None  # one page held every waiting device
    return opened, moved


def _age(dsn: str, seconds: float) -> None:
    """Every batch seen so far was received ``seconds`` earlier (the grace period's clock, without waiting)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE batches_seen SET received_at = received_at - make_interval(secs => %s)", (seconds,))


def _gaps(dsn: str, device: str = "dev") -> list[tuple[int, int]]:
    """The device's open gaps, (first, last) in order."""
    return open_gaps(dsn, device)


def _all_gap_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM sequence_gaps").fetchone()
    assert row is not None
    return int(row[0])


def _mark(dsn: str, device: str = "dev") -> tuple[int, int | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT last_seq, gaps_checked_to FROM device_progress WHERE device_id = %s", (device,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_in_order_batches_move_the_watermark_and_leave_the_sweep_nothing(control: str) -> None:
    _claim(control, [1, 2, 3])
    _claim(control, [4, 5])
    assert _mark(control) == (5, 5)
    assert _sweep(control) == (0, 0)
    assert _gaps(control) == []


def test_a_jump_waits_for_the_grace_period(control: str) -> None:
    _claim(control, [1, 2, 5, 6, 9])
    assert _gaps(control) == []  # not yet: 3, 4, 7 and 8 may still come
    assert _mark(control) == (9, 2)
    assert _sweep(control, grace_s=60) == (0, 0)  # received just now: within the grace period
    _age(control, 61)
    assert _sweep(control, grace_s=60) == (2, 1)
    assert _gaps(control) == [(3, 4), (7, 8)]
    assert _mark(control) == (9, 9)
    # a late batch below the watermark fills its gap at once, as before
    _claim(control, [3, 8])
    assert _gaps(control) == [(4, 4), (7, 7)]


def test_holes_filled_within_the_grace_period_never_become_gaps(control: str) -> None:
    _claim(control, [1, 3, 5])
    _claim(control, [2, 4, 6])  # another consumer's batches of the same device, a moment later
    _age(control, 10)
    assert _sweep(control, grace_s=5) == (0, 1)
    assert _mark(control) == (6, 6)
    assert _all_gap_rows(control) == 0


def test_only_holes_below_a_batch_older_than_the_grace_period_open(control: str) -> None:
    _claim(control, [1, 3])
    _age(control, 10)
    _claim(control, [6])  # received now: the hole 4-5 below it is not due yet
    assert _sweep(control, grace_s=5) == (1, 1)
    assert _gaps(control) == [(2, 2)]
    assert _mark(control) == (6, 3)
    _claim(control, [5])  # inside the pending range: recorded, no gap probed
    _age(control, 10)
    assert _sweep(control, grace_s=5) == (1, 1)
    assert _gaps(control) == [(2, 2), (4, 4)]
    assert _mark(control) == (6, 6)


def test_the_sweep_skips_a_device_being_claimed(control: str) -> None:
    _claim(control, [1, 4])
    with psycopg.connect(control) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('seq:' || 'dev'))")
        assert _sweep(control) == (0, 0)  # does not wait for the claim
    assert _sweep(control) == (1, 1)
    assert _gaps(control) == [(2, 3)]


def test_a_new_devices_first_batch_far_from_one_waits_for_nothing_before_it(control: str) -> None:
    _claim(control, [90_000, 90_002], device="far")
    _claim(control, [5], device="near")
    assert _sweep(control) == (2, 2)
    assert _gaps(control, "far") == [(90_001, 90_001)]
    assert _gaps(control, "near") == [(1, 4)]


def test_rows_written_before_the_watermark_existed_count_as_checked(control: str) -> None:
    with psycopg.connect(control) as conn:
        conn.execute(
            "INSERT INTO batches_seen (device_id, seq, readings) SELECT 'dev', s, 1 FROM generate_series(1, 5) s"
        )
        conn.execute(
            "INSERT INTO device_progress (device_id, last_seq, batches, readings, last_seen_at)"
            " VALUES ('dev', 5, 5, 5, now())"
        )
    assert _sweep(control) == (0, 0)
    _claim(control, [6, 8])
    assert _mark(control) == (8, 6)
    assert _sweep(control) == (1, 1)
    assert _gaps(control) == [(7, 7)]


def test_record_all_waits_too_when_asked(control: str) -> None:
    with psycopg.connect(control) as conn, conn.transaction():
        record_all(conn, {"dev": [(1, 1), (3, 1)]}, immediate=False)
    assert _gaps(control) == []
    assert _sweep(control) == (1, 1)
    assert _gaps(control) == [(2, 2)]


def test_interleaved_consumers_end_with_the_gaps_of_one_in_order_consumer(control: str) -> None:
    """Random seqs with losses, shuffled and split into flushes as consumers of a shared subscription would see
    them, claimed with a grace period and swept: the open gaps are those one consumer, opening gaps at once, gets
    from the same batches in order; and far fewer gap rows were ever written."""
    rng = random.Random(17)
    for round_ in range(6):
        device = f"dev-{round_}"
        received = sorted(rng.sample(range(1, 400), 300))
        order = received[:]
        for i in range(0, len(order) - 8, 8):  # reordered within windows of 8, like two consumers' flushes
            window = order[i : i + 8]
            rng.shuffle(window)
            order[i : i + 8] = window
        start = 0
        while start < len(order):  # flushes of 1 to 20 batches
            end = start + rng.randint(1, 20)
            _claim(control, sorted(order[start:end]), device)
            start = end
        _sweep(control)
        for flush in [received[i : i + 25] for i in range(0, len(received), 25)]:
            _claim(control, flush, f"ref-{round_}", immediate=True)
        assert _gaps(control, device) == _gaps(control, f"ref-{round_}"), round_
        assert _mark(control, device) == (received[-1], received[-1])


def test_the_sweep_goes_page_by_page_and_reaches_every_device(control: str) -> None:
    """One advisory lock per device swept: the sweep takes a page of waiting devices per transaction and goes on
    where it stopped, so no device waits for ever behind others that keep waiting."""
    for i in range(5):
        _claim(control, [1, 3], device=f"dev-{i}")
    with psycopg.connect(control) as conn:
        with conn.transaction():
            assert open_due_gaps(conn, 0.0, limit=2) == (2, 2, "dev-1")
        with conn.transaction():
            assert open_due_gaps(conn, 0.0, after="dev-1", limit=2) == (2, 2, "dev-3")
        with conn.transaction():
            assert open_due_gaps(conn, 0.0, after="dev-3", limit=2) == (1, 1, None)
    assert all(_gaps(control, f"dev-{i}") == [(2, 2)] for i in range(5))
    # the claimer keeps its place between sweeps: two pages per sweep here, so three sweeps cover five devices once
    for i in range(5):
        _claim(control, [5], device=f"dev-{i}")
    claimer = SequenceClaimer(control, BOUND, gap_grace_s=0.0)
    try:
        assert claimer.open_due_gaps(pages=2, page_size=2) == (4, 4)
        assert claimer.open_due_gaps(pages=2, page_size=2) == (1, 1)
        assert claimer.open_due_gaps(pages=2, page_size=2) == (0, 0)
    finally:
        claimer.close()
    assert all(_gaps(control, f"dev-{i}") == [(2, 2), (4, 4)] for i in range(5))
