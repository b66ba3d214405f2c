"""Late data on TimescaleDB: readings older than the continuous aggregates' refresh window.

A TimescaleDB refresh policy only re-materializes ``[now - start_offset, now - end_offset)``. A reading
written later than that (a gateway replaying its queue after a week offline, a quarantine release) lands
below the aggregate's watermark and outside every future refresh: rollup-served answers would drop it,
while plain PostgreSQL (rollup tables maintained at write time) keeps it. So:

1. the writer (:class:`ingest.store.region.RegionWriter`) calls :meth:`LateRows.record` in the
   transaction of its rows: the rows older than :meth:`LateRows.threshold` are recorded as one range per
   UTC day in ``late_rollup_ranges`` (migration ``0004_late_rollup_ranges``);
2. the maintenance (:class:`ingest.store.maintenance.StoreMaintenance`, every
   ``INGEST_LATE_REFRESH_INTERVAL_S``) calls :func:`refresh_recorded`: the recorded ranges, widened to
   whole buckets of each aggregate, merged and cut to the raw retention, are refreshed with
   ``refresh_continuous_aggregate`` (:func:`refresh_statements`), then exactly the rows read are deleted.

A range is recorded when its readings are older than the policies' start offset less one schedule
interval and :data:`MARGIN` (a reading the next policy run would still reach is recorded too: a refresh
too many costs little, one too few loses data). Rows are recorded before they are known to be new: a
redelivery records its range again, which only refreshes it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ingest.records import Row
from ingest.store.rollups import ROLLUPS, Rollup, ceil_to, floor_to
from ingest.store.timescale import REFRESH_PROC, Statement

MARGIN = timedelta(hours=1)
TABLE = "late_rollup_ranges"
_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS = Row._fields.index("ts")  # where a region row has its timestamp

# The smallest (start_offset - schedule_interval) of the aggregates' refresh policies, in seconds.
_REACH_SQL = (
    "SELECT min(extract(epoch FROM (config->>'start_offset')::interval) - extract(epoch FROM schedule_interval))"
    " FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_schema = current_schema()"
)
_RECORD_SQL = f"INSERT INTO {TABLE} (lo, hi) SELECT * FROM unnest(%(lo)s::timestamptz[], %(hi)s::timestamptz[])"


@dataclass(frozen=True)
class LateRows:
    """The writer's view of one TimescaleDB store: how old a reading must be to count as late."""

    reach: timedelta
    """How far back the refresh policies surely look (start offset less a schedule interval)."""

    @classmethod
    def of_store(cls, conn: psycopg.Connection) -> LateRows | None:
        """None where nothing needs recording: no TimescaleDB, no refresh policy (then nothing is
        materialized and the real-time aggregates read every raw row), or no ``late_rollup_ranges``."""
        row = conn.execute(
            "SELECT to_regclass('timescaledb_information.jobs') IS NOT NULL AND to_regclass(%s) IS NOT NULL",
            (TABLE,),
        ).fetchone()
        if not row or not row[0]:
            return None
        reach = conn.execute(_REACH_SQL, (REFRESH_PROC,)).fetchone()
        if reach is None or reach[0] is None:
            return None
        return cls(timedelta(seconds=float(reach[0])))

    def threshold(self, now: datetime) -> datetime:
        """Readings older than this are late."""
        return now - self.reach + MARGIN

    def ranges(
        self,
        rows: Sequence[Sequence[Any]],
        now: datetime,
        *,
        ts: int = _TS,
    ) -> list[tuple[datetime, datetime]]:
        """(oldest, newest) of the late rows of ``rows`` per UTC day, oldest day first.

        A row's items are ``Any``: column ``ts`` (a position, given at run time) must be an aware datetime."""
        cutoff = self.threshold(now)
        if not rows or min(row[ts] for row in rows) >= cutoff:
            return []
        days: dict[int, list[datetime]] = {}
        for row in rows:
            stamp: datetime = row[ts]
            if stamp < cutoff:
                day = (stamp - _EPOCH) // _DAY
                span = days.get(day)
                if span is None:
                    days[day] = [stamp, stamp]
                elif stamp < span[0]:
                    span[0] = stamp
                elif stamp > span[1]:
                    span[1] = stamp
        return [(lo, hi) for _, (lo, hi) in sorted(days.items())]

    def record(self, cur: psycopg.Cursor, rows: Sequence[Sequence[object]], now: datetime | None = None) -> int:
        """Record the late ranges of ``rows`` in the caller's transaction; return how many."""
        found = self.ranges(rows, now or datetime.now(UTC))
        if found:
            cur.execute(_RECORD_SQL, {"lo": [lo for lo, _ in found], "hi": [hi for _, hi in found]})
        return len(found)


# --- refresh (maintenance) -------------------------------------------------------------------------------


def merged_windows(
    ranges: Sequence[tuple[datetime, datetime]],
    rollup: Rollup,
    *,
    not_before: datetime | None = None,
) -> list[tuple[datetime, datetime]]:
    """The refresh windows of ``rollup`` covering ``ranges`` (inclusive ends): whole buckets, overlapping
    or touching windows merged, nothing before ``not_before`` (the raw retention: refreshing a range
    whose raw chunks were dropped would empty the aggregate there)."""
    windows = []
    for lo, hi in ranges:
        start, end = floor_to(lo, rollup.width), ceil_to(hi + timedelta(microseconds=1), rollup.width)
        if not_before is not None:
            start = max(start, ceil_to(not_before, rollup.width))
        if start < end:
            windows.append((start, end))
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def refresh_statements(
    ranges: Sequence[tuple[datetime, datetime]],
    *,
    not_before: datetime | None = None,
) -> list[Statement]:
    """``CALL refresh_continuous_aggregate(...)`` for every aggregate and merged window (autocommit only)."""
    return [
        Statement(
            f"CALL refresh_continuous_aggregate('{rollup.table}', %(start)s::timestamptz, %(end)s::timestamptz)",
            {"start": start, "end": end},
        )
        for rollup in ROLLUPS
        for start, end in merged_windows(ranges, rollup, not_before=not_before)
    ]


@dataclass
class RefreshResult:
    ranges: int = 0
    windows: list[str] | None = None


def refresh_recorded(
    conn: psycopg.Connection,
    *,
    retention: timedelta | None,
    now: datetime,
    limit: int = 10_000,
) -> RefreshResult:
    """Refresh the recorded late ranges (oldest ``limit``), then delete exactly the rows read.

    ``conn`` must be in autocommit mode (``refresh_continuous_aggregate`` cannot run in a transaction
    block). A failed refresh leaves the rows for the next run."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() in (None, (None,)):
        return RefreshResult(0, [])  # a store not migrated to 0004 yet
    rows = conn.execute(f"SELECT id, lo, hi FROM {TABLE} ORDER BY id LIMIT %s", (limit,)).fetchall()
    if not rows:
        return RefreshResult(0, [])
    not_before = now - retention + _DAY if retention is not None else None
    statements = refresh_statements([(lo, hi) for _, lo, hi in rows], not_before=not_before)
    for statement in statements:
        statement.execute(conn)
    conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", ([r[0] for r in rows],))
    return RefreshResult(
        len(rows),
        [
            f"{s.sql.split(chr(39))[1]} [{s.params['start'].isoformat()}, {s.params['end'].isoformat()})"
            for s in statements
        ],
    )


def pending(conn: psycopg.Connection) -> int:
    """Recorded late ranges not refreshed yet (0 where the table does not exist)."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone() in (None, (None,)):
        return 0
    row = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(row[0]) if row else 0
