"""Telemetry queries on a region store: latest value per field, and time-bucketed series.

Plain PostgreSQL (``date_bin``, PostgreSQL 14+): works with and without TimescaleDB.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.deps import DeviceRef, RegionStore
from ingest.api.errors import BadParameterError
from ingest.api.models import Bucket, FieldValuePublic, LatestPublic, SeriesPointPublic, SeriesPublic

BUCKETS: dict[Bucket, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
DEFAULT_WINDOW = timedelta(hours=1)
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

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
_SERIES = """
SELECT date_bin(%(bucket)s, ts, %(origin)s) AS ts,
       min(num) AS min, max(num) AS max, avg(num) AS avg, count(num) AS count
FROM readings
WHERE device_id = %(device)s AND name = %(name)s AND ts >= %(start)s AND ts < %(end)s
  AND num IS NOT NULL
GROUP BY 1
ORDER BY 1
"""


def latest(*, ref: DeviceRef, store: RegionStore, settings: ApiSettings) -> LatestPublic:
    """Latest stored value of every declared field of the device in ``store``."""
    names = sorted(ref.profile.fields)
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        rows = cur.execute(_LATEST, {"names": names, "device": ref.device_id}).fetchall()
    fields = [
        FieldValuePublic(
            name=row["name"],
            category=row["category"],
            unit=ref.profile.fields[row["name"]].unit,
            ts=row["ts"],
            value=row["num"] if row["num"] is not None else row["txt"],
            transform=row["transform"],
            policy_revision=row["policy_revision"],
            decision_id=row["decision_id"],
            region=store.name,
        )
        for row in rows
    ]
    return LatestPublic(device_id=ref.device_id, region=store.name, fields=fields)


def window(
    start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """Resolve the defaults (the last hour, or an hour next to the given bound); naive means UTC."""
    start, end = _aware(start), _aware(end)
    if end is None:
        end = start + DEFAULT_WINDOW if start is not None else (now or datetime.now(UTC))
    if start is None:
        start = end - DEFAULT_WINDOW
    if start >= end:
        raise BadParameterError(
            "start", f"start ({start.isoformat()}) must be before end ({end.isoformat()})"
        )
    return start, end


def series(
    *,
    ref: DeviceRef,
    store: RegionStore,
    settings: ApiSettings,
    name: str,
    start: datetime | None,
    end: datetime | None,
    bucket: Bucket,
) -> SeriesPublic:
    """min/max/avg/count of numeric field ``name`` per ``bucket`` over [start, end)."""
    spec = ref.profile.fields.get(name)
    if spec is None:
        declared = ", ".join(sorted(ref.profile.fields))
        raise BadParameterError(
            "name",
            f"unknown field {name!r} for device {ref.device_id!r} (profile {ref.device.profile}: {declared})",
        )
    start, end = window(start, end)
    width = BUCKETS[bucket]
    buckets = bucket_count(start, end, width)
    if buckets > settings.max_series_buckets:
        raise BadParameterError(
            "bucket",
            f"{bucket} buckets over {end - start} would make up to {buckets} points "
            f"(limit {settings.max_series_buckets}): use a larger bucket or a shorter window",
        )
    params = {"device": ref.device_id, "name": name, "start": start, "end": end, "bucket": width,
              "origin": _ORIGIN}
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        kind = cur.execute(_KIND, params).fetchone()
        if kind is not None and kind["is_text"]:
            raise BadParameterError(
                "name", f"field {name!r} of device {ref.device_id!r} holds text values, not numbers"
            )
        rows = cur.execute(_SERIES, params).fetchall()
    return SeriesPublic(
        device_id=ref.device_id,
        name=name,
        category=spec.category,
        unit=spec.unit,
        region=store.name,
        bucket=bucket,
        start=start,
        end=end,
        points=[SeriesPointPublic.model_validate(row) for row in rows],
    )


def bucket_count(start: datetime, end: datetime, width: timedelta) -> int:
    """How many ``width`` buckets aligned on 2000-01-01 UTC intersect [start, end)."""
    first = (start - _ORIGIN) // width
    last = -((_ORIGIN - end) // width) - 1  # ceil((end - origin) / width) - 1: end is exclusive
    return last - first + 1


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
