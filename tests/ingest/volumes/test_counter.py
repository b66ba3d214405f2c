"""SubjectCounter: exact distinct subjects per (site, region) and legal window."""

from __future__ import annotations

from datetime import date, timedelta

from ingest.volumes.counter import Counts, SubjectCounter, Windows, subject_key

ROUTE = ("cn-dongguan", "eu-central")


def test_windows_are_the_calendar_year_and_365_days():
    w = Windows(date(2026, 3, 1))
    assert w.year_start == date(2026, 1, 1)
    assert w.months12_start == date(2025, 3, 2)
    assert w.horizon == date(2025, 3, 2)


def test_a_subject_counts_once_per_window_and_sensitive_apart():
    c = SubjectCounter(date(2026, 5, 1))
    a, b = subject_key("s", "B-1"), subject_key("s", "B-2")
    assert c.with_subjects(ROUTE, {a: False}) == Counts(1, 0, 1, 0)  # the message's own subject counts
    assert c.counts(ROUTE) == Counts()  # ... but is not recorded by asking
    c.record(ROUTE, {a: False, b: True})
    c.record(ROUTE, {a: False})
    assert c.counts(ROUTE) == Counts(2, 1, 2, 1)
    assert c.with_subjects(ROUTE, {a: True}) == Counts(2, 2, 2, 2)
    assert c.counts(("other", "eu-central")) == Counts()


def test_windows_move_with_the_day():
    c = SubjectCounter(date(2025, 12, 30))
    old = subject_key("s", "old")
    c.record(ROUTE, {old: False})
    assert c.counts(ROUTE) == Counts(1, 0, 1, 0)
    assert c.set_day(date(2026, 1, 2))  # a new year: not this year any more, still in the 12 months
    assert c.counts(ROUTE) == Counts(0, 0, 1, 0)
    assert c.set_day(date(2026, 12, 30))  # 365 days later: out of both windows, dropped
    assert c.counts(ROUTE) == Counts()
    assert not c.set_day(date(2026, 12, 29))  # the day never goes back


def test_merging_store_rows_keeps_the_latest_days():
    c = SubjectCounter(date(2026, 6, 1))
    s = subject_key("s", "B-1")
    assert c.merge(ROUTE, s, date(2026, 2, 1), None) is not None
    assert c.merge(ROUTE, s, date(2026, 1, 1), None) is None  # older: nothing changes
    assert c.merge(ROUTE, s, date(2026, 2, 1), date(2026, 2, 1)) is not None
    assert c.merge(ROUTE, s, date(2024, 1, 1), None) is None
    assert c.counts(ROUTE) == Counts(1, 1, 1, 1)
    assert c.merge(ROUTE, subject_key("s", "ancient"), date(2024, 1, 1), None) is None  # before both windows
    assert c.counts(ROUTE).individuals_12m == 1


def test_subject_keys_are_per_site_and_never_the_value():
    assert subject_key("a", "B-1") != subject_key("b", "B-1")
    assert len(subject_key("a", "B-1")) == 16 and b"B-1" not in subject_key("a", "B-1")
    assert SubjectCounter(date(2026, 1, 1)).windows.today + timedelta(days=1) == date(2026, 1, 2)
