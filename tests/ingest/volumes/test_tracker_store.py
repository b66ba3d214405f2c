"""VolumeTracker and the control store: replicas share their counts through transferred_subjects."""

from __future__ import annotations

import contextlib
from datetime import date

import psycopg

from ingest.volumes import store
from ingest.volumes.counter import Counts, subject_key
from ingest.volumes.tracker import VolumeTracker

DAY = date(2026, 5, 4)


def test_two_replicas_share_their_counts(control: str):
    a = VolumeTracker(control, today=lambda: DAY)
    b = VolumeTracker(control, today=lambda: DAY)
    people = {subject_key("cn-dongguan", f"B-{i}"): i % 10 == 0 for i in range(50)}
    a.record("cn-dongguan", ["eu-central"], people)
    b.record(
        "cn-dongguan",
        ["eu-central"],
        {subject_key("cn-dongguan", "B-1"): False, subject_key("cn-dongguan", "B-999"): False},
    )
    assert b.counts("cn-dongguan", "eu-central") == Counts(2, 0, 2, 0)
    a.sync()
    b.sync()
    a.sync()
    assert a.counts("cn-dongguan", "eu-central") == b.counts("cn-dongguan", "eu-central") == Counts(51, 5, 51, 5)
    with psycopg.connect(control) as conn:
        row = conn.execute(
            "SELECT count(*), bool_or(position('B-1'::bytea in subject) > 0) FROM transferred_subjects"
        ).fetchone()
    assert row is not None
    n, raw = row
    assert n == 51 and raw is False  # hashes only


def test_a_new_replica_starts_from_the_store(control: str):
    first = VolumeTracker(control, today=lambda: DAY)
    first.record("vn-hanoi", ["ap-southeast"], {subject_key("vn-hanoi", "x"): True})
    first.sync()
    late = VolumeTracker(control, today=lambda: DAY)
    late.sync()
    assert late.counts("vn-hanoi", "ap-southeast") == Counts(1, 1, 1, 1)


def test_a_failed_sync_keeps_the_records(control: str):
    t = VolumeTracker("postgresql://nobody@127.0.0.1:1/none", today=lambda: DAY)
    t.record("s", ["r"], {subject_key("s", "1"): False})
    with contextlib.suppress(Exception):
        t.sync()
    assert t.last_sync_error
    t.control_dsn = control
    t.sync()
    with psycopg.connect(control) as conn:
        assert conn.execute("SELECT count(*) FROM transferred_subjects").fetchone() == (1,)


def test_prune_drops_rows_older_than_both_windows(control: str):
    with psycopg.connect(control) as conn:
        store.write(
            conn,
            [
                ("s", "r", subject_key("s", "old"), date(2024, 1, 1), None),
                ("s", "r", subject_key("s", "new"), DAY, None),
            ],
        )
        conn.commit()
        assert store.prune(conn, date(2025, 5, 5)) == 1
        conn.commit()
        rows, newest = store.read_since(conn, date(2025, 5, 5), None)
    assert [r[3] for r in rows] == [DAY] and newest is not None
