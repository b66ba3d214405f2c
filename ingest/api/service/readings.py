"""Telemetry queries on the region stores: latest values, bucketed and raw series, cross-region combination.

Bucketed series are served from the rollups (``readings_1m`` for 1m and 5m buckets, ``readings_1h`` for
1h and 1d): whole rollup buckets inside the window come from the rollup, and only the partial buckets at
the window's edges (a start or end that is not on a rollup boundary) are computed from raw rows, so
the answer is exactly what the raw rows give. The rollups are tables on plain PostgreSQL and continuous
aggregates on TimescaleDB, with the same columns (:mod:`ingest.store.rollups`).

Residency: restricted fields (every category but machine) are returned only to callers authorised for
the region that holds them (:mod:`ingest.api.caller`), and only machine data is combined across regions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import DictRow
from pydantic import TypeAdapter

from ingest.api import db
from ingest.api.caller import Caller, restricted
from ingest.api.config import ApiSettings
from ingest.api.deps import DeviceRef, RegionStore, region_store
from ingest.api.errors import BadParameterError
from ingest.api.models import (
    Bucket,
    FieldValuePublic,
    LatestPublic,
    RawPointPublic,
    SeriesPointPublic,
    SeriesPublic,
)
from ingest.runtime import Runtime
from ingest.store.rollups import ORIGIN, ROLLUP_1H, ROLLUP_1M, Rollup, ceil_to, floor_to

BUCKETS: dict[Bucket, timedelta] = {
    "10s": timedelta(seconds=10),  # short windows (the last 5 or 15 minutes): from raw rows, no rollup
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
ROLLUP_FOR: dict[Bucket, Rollup | None] = {
    "10s": None,
    "1m": ROLLUP_1M,
    "5m": ROLLUP_1M,
    "1h": ROLLUP_1H,
    "1d": ROLLUP_1H,
}
DEFAULT_WINDOW = timedelta(hours=1)
ALL_REGIONS = "all"
POINTS = TypeAdapter(list[SeriesPointPublic])
_ORIGIN = ORIGIN

# One index probe per declared field (readings_device_name_ts), rather than a scan of the device.
_LATEST = """
SELECT f.name, r.category, r.ts, r.num, r.txt, r.transform, r.policy_revision, r.decision_id
FROM unnest(%(names)s::text[]) AS f(name)
CROSS JOIN LATERAL (
    SELECT category, ts, num, txt, transform, policy_revision, decision_id
    FROM readings
    WHERE device_id = %(device)s AND name = f.name
    ORDER BY ts DESC, seq DESC, idx DESC
    LIMIT 1
) AS r
ORDER BY f.name
"""
_KIND = """
SELECT num IS NULL AND txt IS NOT NULL AS is_text
FROM readings WHERE device_id = %(device)s AND name = %(name)s
ORDER BY ts DESC LIMIT 1
"""
_RAW = """
SELECT ts, seq, idx, num, txt, transform
FROM readings
WHERE device_id = %(device)s AND name = %(name)s AND ts >= %(start)s AND ts < %(end)s
  AND (%(after_ts)s::timestamptz IS NULL OR (ts, seq, idx) > (%(after_ts)s, %(after_seq)s, %(after_idx)s))
ORDER BY ts, seq, idx
LIMIT %(limit)s
"""


# --- windows and plans ---------------------------------------------------------------------------


def window(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Resolve the defaults (the last hour, or an hour next to the given bound); naive means UTC."""
    start, end = _aware(start), _aware(end)
    if end is None:
        end = start + DEFAULT_WINDOW if start is not None else (now or datetime.now(UTC))
    if start is None:
        start = end - DEFAULT_WINDOW
    if start >= end:
        raise BadParameterError("start", f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    return start, end


def bucket_count(start: datetime, end: datetime, width: timedelta) -> int:
    """How many ``width`` buckets aligned on 2000-01-01 UTC intersect [start, end)."""
    first = (start - _ORIGIN) // width
    last = -((_ORIGIN - end) // width) - 1  # ceil((end - origin) / width) - 1: end is exclusive
    return last - first + 1


def check_buckets(start: datetime, end: datetime, bucket: Bucket, settings: ApiSettings) -> None:
    buckets = bucket_count(start, end, BUCKETS[bucket])
    if buckets > settings.max_series_buckets:
        raise BadParameterError(
            "bucket",
            f"{bucket} buckets over {end - start} would make up to {buckets} points "
            f"(limit {settings.max_series_buckets}): use a larger bucket or a shorter window",
        )


@dataclass(frozen=True)
class Plan:
    """How [start, end) is answered: whole rollup buckets in [inner_start, inner_end) from ``rollup``,
    the rest ([start, inner_start) and [inner_end, end)) from raw rows. No rollup: raw rows only."""

    start: datetime
    end: datetime
    width: timedelta
    rollup: Rollup | None
    inner_start: datetime
    inner_end: datetime

    def params(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "width": self.width,
            "origin": _ORIGIN,
            "inner_start": self.inner_start,
            "inner_end": self.inner_end,
        }


def plan(start: datetime, end: datetime, bucket: Bucket, *, use_rollups: bool = True) -> Plan:
    width = BUCKETS[bucket]
    rollup = ROLLUP_FOR[bucket] if use_rollups else None
    if rollup is not None:
        inner_start, inner_end = ceil_to(start, rollup.width), floor_to(end, rollup.width)
        if inner_start < inner_end:
            return Plan(start, end, width, rollup, inner_start, inner_end)
    return Plan(start, end, width, None, end, end)


def bucketed_sql(p: Plan, *, by_device: bool = False, by_name: bool = False, many: bool = False) -> str:
    """min/max/sum/count/avg per output bucket (and per device and/or name) for the plan's window.

    Parameters: the plan's, plus ``device`` and ``name`` (or ``devices`` and ``names`` arrays with ``many``).
    """
    where = (
        "device_id = ANY(%(devices)s) AND name = ANY(%(names)s)"
        if many
        else "device_id = %(device)s AND name = %(name)s"
    )
    keys = [k for k, on in (("device_id", by_device), ("name", by_name)) if on]
    extra = "".join(f"{k}, " for k in keys)
    # positional: in GROUP BY, a bare "ts" would mean the raw column, not the bucket
    group = ", ".join(str(n) for n in range(1, len(keys) + 2))
    raw_bucket = "date_bin(%(width)s, ts, %(origin)s)"
    if p.rollup is None:
        return (
            f"SELECT {extra}{raw_bucket} AS ts, min(num) AS min, max(num) AS max, sum(num) AS sum,"
            f" count(num) AS count, sum(num) / count(num) AS avg FROM readings WHERE {where}"
            f" AND ts >= %(start)s AND ts < %(end)s AND num IS NOT NULL GROUP BY {group} ORDER BY {group}"
        )
    parts = [
        f"SELECT {extra}date_bin(%(width)s, bucket, %(origin)s) AS b, min AS lo, max AS hi, sum AS total,"
        f" count AS n FROM {p.rollup.table} WHERE {where} AND bucket >= %(inner_start)s AND bucket < %(inner_end)s",
        f"SELECT {extra}{raw_bucket}, num, num, num, 1 FROM readings WHERE {where} AND num IS NOT NULL"
        " AND ts >= %(start)s AND ts < %(inner_start)s",
        f"SELECT {extra}{raw_bucket}, num, num, num, 1 FROM readings WHERE {where} AND num IS NOT NULL"
        " AND ts >= %(inner_end)s AND ts < %(end)s",
    ]
    if p.width == p.rollup.width:
        # Same width (1m from readings_1m, 1h from readings_1h): rollup rows are the answer's buckets, and
        # the edge buckets (raw) are other buckets: no re-aggregation, the rows come in index order.
        edge = (
            f"SELECT {extra}{raw_bucket} AS ts, min(num) AS min, max(num) AS max, sum(num) AS sum,"
            f" count(num) AS count, sum(num) / count(num) AS avg FROM readings WHERE {where}"
            f" AND num IS NOT NULL AND ts >= %({{lo}})s AND ts < %({{hi}})s GROUP BY {group}"
        )
        branches = [
            f"SELECT {extra}bucket AS ts, min, max, sum, count, sum / count AS avg FROM {p.rollup.table}"
            f" WHERE {where} AND bucket >= %(inner_start)s AND bucket < %(inner_end)s"
        ]
        if p.start < p.inner_start:  # an aligned window does not touch the raw table at all
            branches.insert(0, edge.format(lo="start", hi="inner_start"))
        if p.inner_end < p.end:
            branches.append(edge.format(lo="inner_end", hi="end"))
        return " UNION ALL ".join(f"({b})" for b in branches) + f" ORDER BY {group}"
    outer_group = ", ".join([*keys, "b"])
    return (
        f"SELECT {extra}b AS ts, min(lo) AS min, max(hi) AS max, sum(total) AS sum, sum(n)::bigint AS count,"
        " sum(total) / sum(n) AS avg"
        f" FROM ({' UNION ALL '.join(parts)}) AS parts GROUP BY {outer_group} ORDER BY {outer_group}"
    )


# --- aggregates ----------------------------------------------------------------------------------


@dataclass
class Agg:
    min: float
    max: float
    sum: float
    count: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Agg:
        return cls(row["min"], row["max"], row["sum"], int(row["count"]))

    def add(self, other: Agg) -> None:
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.sum += other.sum
        self.count += other.count

    @property
    def avg(self) -> float:
        return self.sum / self.count

    def point(self, ts: datetime) -> SeriesPointPublic:
        return SeriesPointPublic(ts=ts, min=self.min, max=self.max, avg=self.avg, count=self.count)


def merge(aggs: Iterable[Agg]) -> Agg | None:
    total: Agg | None = None
    for agg in aggs:
        if total is None:
            total = Agg(agg.min, agg.max, agg.sum, agg.count)
        else:
            total.add(agg)
    return total


def most_complete_sources(per_region: Mapping[str, Mapping[Any, Agg]]) -> dict[Any, tuple[str, Agg]]:
    """:func:`most_complete`, with the region each kept answer came from."""
    combined: dict[Any, tuple[str, Agg]] = {}
    for region, answers in per_region.items():
        for key, agg in answers.items():
            if key not in combined or agg.count > combined[key][1].count:
                combined[key] = (region, agg)
    return combined


def most_complete(per_region: Mapping[str, Mapping[Any, Agg]]) -> dict[Any, Agg]:
    """Combine the answers of several region stores: for each key (e.g. device and bucket), the answer
    of the store holding the most readings. Stores hold copies of the same readings (the home region
    and the analytics copy), so adding them up would count a reading once per copy; the fullest copy of
    a bucket is exact whenever the other stores hold a subset of it, which is how copies are made.
    Ties go to the first region of ``per_region``."""
    combined: dict[Any, Agg] = {}
    for answers in per_region.values():
        for key, agg in answers.items():
            if key not in combined or agg.count > combined[key].count:
                combined[key] = agg
    return combined


def run_bucketed(cur: psycopg.Cursor[DictRow], sql: str, params: Mapping[str, Any]) -> list[DictRow]:
    """Binary results (no text parsing of thousands of timestamps and floats), never prepared: psycopg
    prepares a statement after its 5th execution, and PostgreSQL then settles on a generic plan, which
    cannot use the window's bounds to prune chunks, partitions and continuous-aggregate parts (on a
    continuous aggregate 14.4 ms instead of 4.4 ms). Unprepared, each execution is planned for its values."""
    return cur.execute(sql, params, binary=True, prepare=False).fetchall()


# --- latest --------------------------------------------------------------------------------------


def latest(*, ref: DeviceRef, store: RegionStore, settings: ApiSettings, caller: Caller) -> LatestPublic:
    """Latest stored value of every declared field of the device in ``store`` (restricted values of a
    region the caller is not authorised for are redacted)."""
    names = sorted(ref.profile.fields)
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        rows = cur.execute(_LATEST, {"names": names, "device": ref.device_id}).fetchall()
    fields = []
    for row in rows:
        allowed = caller.may_read(store.name, row["category"])
        fields.append(
            FieldValuePublic(
                name=row["name"],
                category=row["category"],
                unit=ref.profile.fields[row["name"]].unit,
                ts=row["ts"],
                value=(row["num"] if row["num"] is not None else row["txt"]) if allowed else None,
                transform=row["transform"],
                policy_revision=row["policy_revision"],
                decision_id=row["decision_id"],
                region=store.name,
                withheld=not allowed,
            )
        )
    return LatestPublic(device_id=ref.device_id, region=store.name, fields=fields)


# --- series --------------------------------------------------------------------------------------


def _field(ref: DeviceRef, name: str) -> Any:
    spec = ref.profile.fields.get(name)
    if spec is None:
        declared = ", ".join(sorted(ref.profile.fields))
        raise BadParameterError(
            "name",
            f"unknown field {name!r} for device {ref.device_id!r} (profile {ref.device.profile}: {declared})",
        )
    return spec


def _check_numeric(cur: psycopg.Cursor[DictRow], ref: DeviceRef, name: str) -> None:
    kind = cur.execute(_KIND, {"device": ref.device_id, "name": name}).fetchone()
    if kind is not None and kind["is_text"]:
        raise BadParameterError("name", f"field {name!r} of device {ref.device_id!r} holds text values, not numbers")


def series(
    *,
    ref: DeviceRef,
    store: RegionStore,
    settings: ApiSettings,
    caller: Caller,
    name: str,
    start: datetime | None,
    end: datetime | None,
    bucket: Bucket,
    use_rollups: bool = True,
) -> SeriesPublic:
    """min/max/avg/count of numeric field ``name`` per ``bucket`` over [start, end) in one region store."""
    spec = _field(ref, name)
    start, end = window(start, end)
    check_buckets(start, end, bucket, settings)
    caller.require(store.name, spec.category, f"field {name!r} of device {ref.device_id!r}")
    p = plan(start, end, bucket, use_rollups=use_rollups)
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        rows = run_bucketed(cur, bucketed_sql(p), {**p.params(), "device": ref.device_id, "name": name})
        if not rows:  # numeric points prove the field numeric; without any, say why if it holds text
            _check_numeric(cur, ref, name)
    return SeriesPublic(
        device_id=ref.device_id,
        name=name,
        category=spec.category,
        unit=spec.unit,
        region=store.name,
        bucket=bucket,
        start=start,
        end=end,
        rollup=p.rollup.table if p.rollup else None,
        points=POINTS.validate_python(rows),  # one pydantic-core call for the whole list
    )


def series_all_regions(
    *,
    ref: DeviceRef,
    runtime: Runtime,
    settings: ApiSettings,
    name: str,
    start: datetime | None,
    end: datetime | None,
    bucket: Bucket,
) -> SeriesPublic:
    """``region=all``: the series answered by every candidate region of the device's site and combined
    (machine data only)."""
    spec = _field(ref, name)
    if restricted(spec.category):
        raise BadParameterError(
            "region",
            f"field {name!r} is {spec.category} data: only machine data is combined across regions (ask one region)",
        )
    start, end = window(start, end)
    check_buckets(start, end, bucket, settings)
    p = plan(start, end, bucket)
    regions = runtime.registry.candidate_regions(ref.site)
    per_region: dict[str, dict[datetime, Agg]] = {}
    for region in regions:
        store = region_store(runtime, region, default=region)
        with db.query(store.pool, store=store.name, settings=settings) as cur:
            rows = run_bucketed(cur, bucketed_sql(p), {**p.params(), "device": ref.device_id, "name": name})
            if not rows:
                _check_numeric(cur, ref, name)
        per_region[region] = {row["ts"]: Agg.of(row) for row in rows}
    combined = most_complete(per_region)
    return SeriesPublic(
        device_id=ref.device_id,
        name=name,
        category=spec.category,
        unit=spec.unit,
        region=ALL_REGIONS,
        bucket=bucket,
        start=start,
        end=end,
        rollup=p.rollup.table if p.rollup else None,
        regions=regions,
        points=[combined[ts].point(ts) for ts in sorted(combined)],
    )


def raw_series(
    *,
    ref: DeviceRef,
    store: RegionStore,
    settings: ApiSettings,
    caller: Caller,
    name: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> SeriesPublic:
    """Stored readings of ``name`` over [start, end), oldest first, one page of at most ``limit``."""
    spec = _field(ref, name)
    start, end = window(start, end)
    if limit > settings.max_series_buckets:
        raise BadParameterError(
            "limit", f"at most {settings.max_series_buckets} raw points per page (limit {settings.max_series_buckets})"
        )
    caller.require(store.name, spec.category, f"field {name!r} of device {ref.device_id!r}")
    after = decode_cursor(cursor)
    params = {
        "device": ref.device_id,
        "name": name,
        "start": start,
        "end": end,
        "limit": limit + 1,
        "after_ts": after[0] if after else None,
        "after_seq": after[1] if after else None,
        "after_idx": after[2] if after else None,
    }
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        rows = cur.execute(_RAW, params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    points = [
        RawPointPublic(
            ts=r["ts"],
            seq=r["seq"],
            idx=r["idx"],
            value=r["num"] if r["num"] is not None else r["txt"],
            transform=r["transform"],
        )
        for r in rows
    ]
    last = rows[-1] if rows else None
    return SeriesPublic(
        device_id=ref.device_id,
        name=name,
        category=spec.category,
        unit=spec.unit,
        region=store.name,
        bucket="raw",
        start=start,
        end=end,
        points=[],
        readings=points,
        limit=limit,
        next_cursor=encode_cursor(last["ts"], last["seq"], last["idx"]) if more and last else None,
    )


def encode_cursor(ts: datetime, seq: int, idx: int) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{seq}|{idx}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, int, int] | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, seq, idx = text.split("|")
        return datetime.fromisoformat(ts), int(seq), int(idx)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParameterError("cursor", "not a cursor returned by this endpoint (next_cursor)") from None


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


__all__: Sequence[str] = [
    "BUCKETS",
    "DEFAULT_WINDOW",
    "Agg",
    "Plan",
    "bucket_count",
    "bucketed_sql",
    "latest",
    "merge",
    "most_complete",
    "plan",
    "raw_series",
    "series",
    "series_all_regions",
    "window",
]
