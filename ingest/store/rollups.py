"""Rollups of numeric readings: ``readings_1m`` and ``readings_1h``.

Both storage paths expose the same relations with the same columns, so the API reads them the same way:

    device_id text, name text, bucket timestamptz, count bigint, sum float8, min float8, max float8

(one row per device, field and bucket holding numeric values; ``avg = sum / count``).

- **Plain PostgreSQL**: tables (migration ``0003_rollups.plain.sql``), maintained incrementally at write
  time by :class:`ingest.store.region.RegionWriter` in the same transaction as the raw rows. Only rows
  that were *newly* inserted are aggregated (``INSERT ... ON CONFLICT DO NOTHING RETURNING`` feeds the
  rollup upserts), so a redelivered batch adds nothing; upserts add ``count``/``sum`` and take
  ``least``/``greatest`` of ``min``/``max``, which is exact whatever the arrival order.
- **TimescaleDB**: continuous aggregates with the same names and columns (:mod:`ingest.store.timescale`),
  refreshed by policies, real-time (``materialized_only = false``).

Buckets are aligned on 2000-01-01 00:00 UTC (``date_bin``); for 1 minute and 1 hour this is the same
alignment as TimescaleDB's ``time_bucket`` (origin 2000-01-03, also a midnight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
_ORIGIN_SQL = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


@dataclass(frozen=True)
class Rollup:
    table: str
    width: timedelta
    interval_sql: str  # SQL interval literal of ``width``


ROLLUP_1M = Rollup("readings_1m", timedelta(minutes=1), "INTERVAL '1 minute'")
ROLLUP_1H = Rollup("readings_1h", timedelta(hours=1), "INTERVAL '1 hour'")
ROLLUPS: tuple[Rollup, ...] = (ROLLUP_1M, ROLLUP_1H)


def bucket_sql(rollup: Rollup, column: str = "ts") -> str:
    return f"date_bin({rollup.interval_sql}, {column}, {_ORIGIN_SQL})"


def floor_to(value: datetime, width: timedelta) -> datetime:
    """Start of the ``width`` bucket (aligned on 2000-01-01 UTC) holding ``value``."""
    return ORIGIN + ((value - ORIGIN) // width) * width


def ceil_to(value: datetime, width: timedelta) -> datetime:
    floor = floor_to(value, width)
    return floor if floor == value else floor + width


def upsert_sql(rollup: Rollup, source: str) -> str:
    """Upsert the aggregates of ``source`` (a relation or CTE with device_id, name, ts, num) into ``rollup``.

    Rows are grouped and ordered by key, so each rollup row is touched once per statement and
    concurrent writers lock rollup rows in the same order (no deadlock between replicas).
    """
    return (
        f"INSERT INTO {rollup.table} AS r (device_id, name, bucket, count, sum, min, max)"
        f" SELECT device_id, name, {bucket_sql(rollup)}, count(*), sum(num), min(num), max(num)"
        f" FROM {source} WHERE num IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        " ON CONFLICT (device_id, name, bucket) DO UPDATE SET"
        " count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,"
        " min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max)"
    )


def merge_with_rollups_sql(columns: str, staging: str) -> str:
    """One statement: insert the staged rows (duplicates skipped), then fold only the new ones into the
    rollups. Returns one row: the number of new readings."""
    ctes = [
        f"new AS (INSERT INTO readings ({columns}) SELECT {columns} FROM {staging}"
        " ORDER BY device_id, seq, idx, name, ts ON CONFLICT DO NOTHING RETURNING device_id, name, ts, num)"
    ]
    ctes += [f"up_{i} AS ({upsert_sql(r, 'new')})" for i, r in enumerate(ROLLUPS)]
    return "WITH " + ", ".join(ctes) + " SELECT count(*) FROM new"


# Epoch seconds of the alignment origin: a whole number of hours (and so of minutes) since 1970, so flooring
# epoch seconds to the bucket width gives the same buckets as date_bin(..., ORIGIN).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_ORIGIN_EPOCH = int(ORIGIN.timestamp())
assert _ORIGIN_EPOCH % 3600 == 0


Aggregates = dict[tuple[str, str, int], list[float]]
"""(device_id, name, bucket start in epoch seconds) -> [count, sum, min, max]."""


def aggregate_rows(rows: Sequence[Sequence[Any]], *, device: int, name: int, ts: int, num: int) -> Aggregates:
    """1-minute aggregates of the numeric values of ``rows`` (tuples; the arguments are column positions).

    For the writer's fast path: rows known to be new are folded into the rollups without reading them back
    from the database. Rows of one sample share their ``ts`` object, so its bucket is computed once.

    A column's type depends on its position, given at run time, so a row's items are ``Any``; the columns
    read must be: ``device`` and ``name`` str, ``ts`` an aware datetime, ``num`` float or None."""
    agg: Aggregates = {}
    last_ts: datetime | None = None
    bucket = 0
    value: float | None
    stamp: datetime
    for row in rows:
        value = row[num]
        if value is None:
            continue
        stamp = row[ts]
        if stamp is not last_ts:
            # exact integer arithmetic (a float timestamp could round a value just before a boundary up)
            bucket, last_ts = (stamp - _EPOCH) // _MINUTE * 60, stamp
        key = (row[device], row[name], bucket)
        a = agg.get(key)
        if a is None:
            agg[key] = [1, value, value, value]
        else:
            a[0] += 1
            a[1] += value
            if value < a[2]:
                a[2] = value
            elif value > a[3]:
                a[3] = value
    return agg


def coarsen(agg: Aggregates, width_s: int) -> Aggregates:
    """Aggregates re-bucketed to a wider width (a multiple of the input's): 1 minute -> 1 hour."""
    out: Aggregates = {}
    for (device, name, bucket), (count, total, low, high) in agg.items():
        key = (device, name, bucket - (bucket - _ORIGIN_EPOCH) % width_s)
        a = out.get(key)
        if a is None:
            out[key] = [count, total, low, high]
        else:
            a[0] += count
            a[1] += total
            a[2] = min(a[2], low)
            a[3] = max(a[3], high)
    return out


def _upsert_arrays_sql(rollup: Rollup, params: str) -> str:
    return (
        f"INSERT INTO {rollup.table} AS r (device_id, name, bucket, count, sum, min, max)"
        " SELECT d, n, to_timestamp(b), c, s, lo, hi FROM unnest("
        f"%({params}_d)b::text[], %({params}_n)b::text[], %({params}_b)b::float8[], %({params}_c)b::int8[],"
        f" %({params}_s)b::float8[], %({params}_lo)b::float8[], %({params}_hi)b::float8[])"
        " AS t(d, n, b, c, s, lo, hi) ORDER BY 1, 2, 3"
        " ON CONFLICT (device_id, name, bucket) DO UPDATE SET"
        " count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,"
        " min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max)"
    )


# Both rollups in one round trip; each statement's rows are in key order (lock order, see upsert_sql).
UPSERT_AGGREGATES_SQL = (
    f"WITH m AS ({_upsert_arrays_sql(ROLLUP_1M, 'm')}), h AS ({_upsert_arrays_sql(ROLLUP_1H, 'h')}) SELECT 1"
)


def upsert_aggregates_params(minute: Aggregates) -> dict[str, list[object]]:
    """Parameters of :data:`UPSERT_AGGREGATES_SQL` for 1-minute aggregates (the hour rollup is derived)."""
    params: dict[str, list[object]] = {}
    for prefix, agg in (("m", minute), ("h", coarsen(minute, 3600))):
        items = sorted(agg.items())
        params[f"{prefix}_d"] = [k[0] for k, _ in items]
        params[f"{prefix}_n"] = [k[1] for k, _ in items]
        params[f"{prefix}_b"] = [float(k[2]) for k, _ in items]
        params[f"{prefix}_c"] = [int(v[0]) for _, v in items]
        params[f"{prefix}_s"] = [v[1] for _, v in items]
        params[f"{prefix}_lo"] = [v[2] for _, v in items]
        params[f"{prefix}_hi"] = [v[3] for _, v in items]
    return params


def maintained_at_write(conn: psycopg.Connection) -> bool:
    """True when the rollups are tables the writer must maintain (plain PostgreSQL path); False when they
    are TimescaleDB continuous aggregates (views) or absent."""
    row = conn.execute(
        "SELECT count(*) FROM pg_class WHERE oid IN (to_regclass('readings_1m'), to_regclass('readings_1h'))"
        " AND relkind IN ('r', 'p')"
    ).fetchone()
    return row is not None and row[0] == len(ROLLUPS)


def rebuild(conn: psycopg.Connection, start: datetime | None = None, end: datetime | None = None) -> None:
    """Recompute the rollup tables from the raw rows, for [start, end) widened to whole hours, or all.

    For repairs, bulk loads (the benchmark) and rows written without the writer. Plain path only.
    """
    lo = floor_to(start, ROLLUP_1H.width) if start is not None else None
    hi = ceil_to(end, ROLLUP_1H.width) if end is not None else None
    where, params = _range("bucket", lo, hi)
    raw_where, _ = _range("ts", lo, hi)
    for rollup in ROLLUPS:
        conn.execute(f"DELETE FROM {rollup.table} {where}", params)
        conn.execute(
            f"INSERT INTO {rollup.table} (device_id, name, bucket, count, sum, min, max)"
            f" SELECT device_id, name, {bucket_sql(rollup)}, count(*), sum(num), min(num), max(num)"
            f" FROM readings {raw_where}{' AND' if raw_where else ' WHERE'} num IS NOT NULL GROUP BY 1, 2, 3"
            " ORDER BY 3, 1, 2",  # bucket-major, like the rows the writer creates as time goes by
            params,
        )


@dataclass(frozen=True)
class Mismatch:
    table: str
    device_id: str
    name: str
    bucket: datetime
    rollup: tuple[int, float, float, float] | None
    raw: tuple[int, float, float, float] | None


def verify(
    conn: psycopg.Connection,
    *,
    start: datetime,
    end: datetime,
    device_id: str | None = None,
    rel_tol: float = 1e-9,
) -> list[Mismatch]:
    """Compare every rollup row of [start, end) (whole hours) with aggregates computed from the raw rows.

    Returns the differences (count must be equal; sum/min/max equal within ``rel_tol``): empty means
    the rollups are exactly what the raw rows give.
    """
    lo, hi = floor_to(start, ROLLUP_1H.width), ceil_to(end, ROLLUP_1H.width)
    found: list[Mismatch] = []
    device_sql = " AND device_id = %(device)s" if device_id is not None else ""
    params = {"lo": lo, "hi": hi, "device": device_id}
    for rollup in ROLLUPS:
        rolled = {
            (d, n, b): (c, s, mn, mx)
            for d, n, b, c, s, mn, mx in conn.execute(
                f"SELECT device_id, name, bucket, count, sum, min, max FROM {rollup.table}"
                f" WHERE bucket >= %(lo)s AND bucket < %(hi)s{device_sql}",
                params,
            ).fetchall()
        }
        raw = {
            (d, n, b): (c, s, mn, mx)
            for d, n, b, c, s, mn, mx in conn.execute(
                f"SELECT device_id, name, {bucket_sql(rollup)}, count(*), sum(num), min(num), max(num)"
                f" FROM readings WHERE ts >= %(lo)s AND ts < %(hi)s AND num IS NOT NULL{device_sql}"
                " GROUP BY 1, 2, 3",
                params,
            ).fetchall()
        }
        for key in sorted(rolled.keys() | raw.keys()):
            a, b = rolled.get(key), raw.get(key)
            if (
                a is None
                or b is None
                or a[0] != b[0]
                or not all(_close(x, y, rel_tol) for x, y in zip(a[1:], b[1:], strict=True))
            ):
                found.append(Mismatch(rollup.table, key[0], key[1], key[2], a, b))
    return found


def _close(a: float, b: float, rel_tol: float) -> bool:
    return a == b or abs(a - b) <= rel_tol * max(abs(a), abs(b), 1.0)


def _range(column: str, lo: datetime | None, hi: datetime | None) -> tuple[str, dict[str, datetime]]:
    parts, params = [], {}
    if lo is not None:
        parts.append(f"{column} >= %(lo)s")
        params["lo"] = lo
    if hi is not None:
        parts.append(f"{column} < %(hi)s")
        params["hi"] = hi
    return ("WHERE " + " AND ".join(parts) if parts else ""), params
