"""Exact counts of distinct data subjects per (site, region) and per legal window, in memory. Pure: no I/O.

A subject counts in a window when its latest transfer day falls in it, so one date per subject (and one for
its latest sensitive transfer) is all a window needs. Counts are kept incrementally; when the UTC day
changes the windows move, so every route is recounted and subjects older than both windows are dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

Route = tuple[str, str]  # (site id, region name)
Row = tuple[str, str, bytes, date, date | None]  # what the store keeps: site, region, subject, days


def subject_key(site_id: str, value: object) -> bytes:
    """The stored identity of a data subject: 16 bytes of sha256(site NUL value), never the value."""
    return hashlib.sha256(f"{site_id}\0{value}".encode()).digest()[:16]


@dataclass(frozen=True)
class Windows:
    """The windows the laws set, as first UTC days (inclusive) for ``today``. Computed once per day (every
    subject of every message is compared with them)."""

    today: date
    year_start: date = field(init=False)
    """CN CAC 2024 Provisions: cumulative since 1 January of the current year."""
    months12_start: date = field(init=False)
    """28 CFR 202.205: "at any point in the preceding 12 months": 365 days including today."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "year_start", date(self.today.year, 1, 1))
        object.__setattr__(self, "months12_start", self.today - timedelta(days=364))

    @property
    def horizon(self) -> date:
        """The first day either window still needs."""
        return min(self.year_start, self.months12_start)


@dataclass(frozen=True)
class Counts:
    individuals_ytd: int = 0
    sensitive_individuals_ytd: int = 0
    individuals_12m: int = 0
    sensitive_individuals_12m: int = 0

    def as_volume(self) -> dict[str, int]:
        return {
            "individuals_ytd": self.individuals_ytd,
            "sensitive_individuals_ytd": self.sensitive_individuals_ytd,
            "individuals_12m": self.individuals_12m,
            "sensitive_individuals_12m": self.sensitive_individuals_12m,
        }


def _in(day: date | None, start: date) -> int:
    return 1 if day is not None and day >= start else 0


def _later(a: date | None, b: date | None) -> date | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class _RouteCounts:
    __slots__ = ("s12", "subjects", "sytd", "y12", "ytd")

    def __init__(self) -> None:
        self.subjects: dict[bytes, tuple[date, date | None]] = {}
        self.ytd = self.sytd = self.y12 = self.s12 = 0

    def delta(
        self, old: tuple[date, date | None] | None, new: tuple[date, date | None], w: Windows
    ) -> tuple[int, int, int, int]:
        o_day, o_sens = old if old else (None, None)
        n_day, n_sens = new
        return (
            _in(n_day, w.year_start) - _in(o_day, w.year_start),
            _in(n_sens, w.year_start) - _in(o_sens, w.year_start),
            _in(n_day, w.months12_start) - _in(o_day, w.months12_start),
            _in(n_sens, w.months12_start) - _in(o_sens, w.months12_start),
        )

    def counts(self) -> Counts:
        return Counts(self.ytd, self.sytd, self.y12, self.s12)

    def recount(self, w: Windows) -> None:
        self.subjects = {s: d for s, d in self.subjects.items() if d[0] >= w.horizon}
        self.ytd = sum(_in(d, w.year_start) for d, _ in self.subjects.values())
        self.sytd = sum(_in(s, w.year_start) for _, s in self.subjects.values())
        self.y12 = sum(_in(d, w.months12_start) for d, _ in self.subjects.values())
        self.s12 = sum(_in(s, w.months12_start) for _, s in self.subjects.values())


class SubjectCounter:
    """Distinct subjects per route and window. Not thread-safe (the tracker holds a lock around it)."""

    def __init__(self, today: date) -> None:
        self._windows = Windows(today)
        self._routes: dict[Route, _RouteCounts] = {}

    @property
    def windows(self) -> Windows:
        return self._windows

    def set_day(self, today: date) -> bool:
        """Move the windows to ``today``; True when they moved (every route was recounted)."""
        if today <= self._windows.today:
            return False
        self._windows = Windows(today)
        for route in self._routes.values():
            route.recount(self._windows)
        return True

    def routes(self) -> list[Route]:
        return sorted(self._routes)

    def counts(self, route: Route) -> Counts:
        found = self._routes.get(route)
        return found.counts() if found else Counts()

    def with_subjects(self, route: Route, subjects: Mapping[bytes, bool]) -> Counts:
        """The counts as if ``subjects`` (subject -> sensitive) were transferred today, without recording."""
        found = self._routes.get(route) or _RouteCounts()
        today, w = self._windows.today, self._windows
        ytd, sytd, y12, s12 = found.ytd, found.sytd, found.y12, found.s12
        known = found.subjects
        for subject, sensitive in subjects.items():
            old = known.get(subject)
            if old is not None and old[0] == today and (not sensitive or old[1] == today):
                continue  # transferred today already (the common case): no window moves
            new = (today, today if sensitive else (old[1] if old else None))
            a, b, c, d = found.delta(old, new, w)
            ytd, sytd, y12, s12 = ytd + a, sytd + b, y12 + c, s12 + d
        return Counts(ytd, sytd, y12, s12)

    def record(self, route: Route, subjects: Mapping[bytes, bool]) -> list[Row]:
        """Record a transfer of ``subjects`` today; the rows that changed (what the store must learn)."""
        today = self._windows.today
        return [
            row
            for subject, sensitive in subjects.items()
            if (row := self.merge(route, subject, today, today if sensitive else None)) is not None
        ]

    def merge(self, route: Route, subject: bytes, last_day: date, last_sensitive_day: date | None) -> Row | None:
        """Merge what a store row or another replica says (the latest days win); the merged row when it
        changed anything, else None. Rows older than both windows are ignored."""
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = _RouteCounts()
        old = found.subjects.get(subject)
        new = (_later(old[0] if old else None, last_day), _later(old[1] if old else None, last_sensitive_day))
        if new == old or new[0] is None or new[0] < self._windows.horizon:
            return None
        a, b, c, d = found.delta(old, new, self._windows)  # type: ignore[arg-type]  # new[0] is not None (returned above); mypy does not narrow a tuple's item
        found.ytd += a
        found.sytd += b
        found.y12 += c
        found.s12 += d
        found.subjects[subject] = new  # type: ignore[assignment]  # as above: new[0] is a date here
        return (route[0], route[1], subject, new[0], new[1])

    def merge_rows(self, rows: Iterable[Row]) -> int:
        """Merge store rows; how many changed a count or a day."""
        return sum(
            self.merge((site, region), subject, day, sens) is not None for site, region, subject, day, sens in rows
        )
