"""claim_all: redeliveries, conflicts (same seq, other content) and implausible jumps (docs/message-isolation.md)."""

from __future__ import annotations

import threading

import psycopg

from ingest.store.sequences import Claim, JumpBound, SequenceClaimer, Verdict, claim_all

BOUND = JumpBound(allowance=100, rate=10.0)


def _claim(dsn: str, *claims: Claim, bound: JumpBound = BOUND) -> list[Verdict]:
    with psycopg.connect(dsn) as conn, conn.transaction():
        return claim_all(conn, list(claims), bound)


def _c(seq: int, digest: bytes = b"a", device: str = "dev") -> Claim:
    return Claim(device, seq, 1, digest)


def _state(dsn: str, device: str = "dev") -> tuple[int | None, list[tuple[int, int]]]:
    """(the device's highest seq, its open gaps)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT last_seq FROM device_progress WHERE device_id = %s", (device,)).fetchone()
        gaps = conn.execute(
            "SELECT first_missing, last_missing FROM sequence_gaps WHERE device_id = %s AND"
            " closed_at IS NULL ORDER BY 1",
            (device,),
        ).fetchall()
    return (row[0] if row else None), [(a, b) for a, b in gaps]


def test_a_redelivery_is_seen_and_other_content_is_a_conflict(control: str) -> None:
    assert _claim(control, _c(1), _c(2)) == ["new", "new"]
    assert _claim(control, _c(1), _c(2, b"other"), _c(3)) == ["seen", "conflict", "new"]
    assert _state(control) == (3, [])
    with psycopg.connect(control) as conn:  # the conflict changed nothing of what was recorded
        assert conn.execute("SELECT digest FROM batches_seen WHERE seq = 2").fetchone() == (b"a",)


def test_a_conflict_inside_one_flush_keeps_the_first(control: str) -> None:
    assert _claim(control, _c(1, b"x"), _c(1, b"y"), _c(1, b"x")) == ["new", "conflict", "seen"]


def test_batches_recorded_before_digests_count_as_the_same_content(control: str) -> None:
    with psycopg.connect(control) as conn:
        conn.execute("INSERT INTO batches_seen (device_id, seq, readings) VALUES ('dev', 1, 1)")
    assert _claim(control, _c(1, b"anything")) == ["seen"]


def test_a_wild_jump_is_refused_and_moves_nothing(control: str) -> None:
    assert _claim(control, *[_c(s) for s in range(1, 11)]) == ["new"] * 10
    assert _claim(control, _c(100_000)) == ["jump"]  # seconds after seq 10: 100 + 10/s allowed
    assert _state(control) == (10, [])  # no gap of 99,989 batches, the high-water mark did not move
    assert _claim(control, _c(11), _c(50)) == ["new", "new"]  # the device carries on; a plausible gap opens
    assert _state(control) == (50, [(12, 49)])


def test_a_jump_after_a_long_silence_is_plausible(control: str) -> None:
    """A gateway back after a day offline whose queue dropped its oldest batches jumps far, and is believed."""
    assert _claim(control, _c(1)) == ["new"]
    with psycopg.connect(control) as conn:
        conn.execute("UPDATE device_progress SET last_seen_at = now() - interval '1 day' WHERE device_id = 'dev'")
    assert _claim(control, _c(500_000)) == ["new"]  # 100 + 10/s x 86,400 s
    assert _state(control) == (500_000, [(2, 499_999)])


def test_a_new_devices_first_batch_far_from_one_opens_no_gap(control: str) -> None:
    assert _claim(control, _c(7, device="near"), _c(90_000, device="far"), _c(90_002, device="far")) == ["new"] * 3
    assert _state(control, "near") == (7, [(1, 6)])
    assert _state(control, "far") == (90_002, [(90_001, 90_001)])


def test_replicas_claiming_the_same_seqs_agree(control: str) -> None:
    """Two replicas claim the same seq with different content at once: exactly one wins."""
    results: list[list[Verdict]] = []
    barrier = threading.Barrier(2)

    def replica(digest: bytes) -> None:
        claimer = SequenceClaimer(control, BOUND)
        barrier.wait()
        results.append(claimer.claim([_c(seq, digest) for seq in range(1, 51)]))
        claimer.close()

    threads = [threading.Thread(target=replica, args=(d,)) for d in (b"r1", b"r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [["conflict"] * 50, ["new"] * 50]
    assert _state(control) == (50, [])
