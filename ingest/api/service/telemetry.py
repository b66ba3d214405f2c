"""Per-site summaries and cross-region metric aggregates.

A site's data lives in its home region, with copies of what the policy lets travel in the analytics
region. A summary reads the home region (counts from every candidate region); an aggregate over a
metric asks every candidate region of the sites involved and combines their answers per device and
bucket (:func:`ingest.api.service.readings.most_complete`). Only machine data is aggregated across
regions; restricted values in a summary are withheld from callers not authorised for the home region.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.api import db
from ingest.api.caller import Caller, restricted
from ingest.api.config import ApiSettings
from ingest.api.deps import region_store
from ingest.api.errors import BadParameterError, ForbiddenError, NotFoundError
from ingest.api.models import (
    AggregatePointPublic,
    AggregatePublic,
    Bucket,
    DeviceAggregatePublic,
    LatestValuePublic,
    MetricAggregatePublic,
    MetricSummaryPublic,
    RegionCountPublic,
    SiteSummaryPublic,
)
from ingest.api.service import devices as device_service
from ingest.api.service.readings import (
    ALL_REGIONS,
    Agg,
    Plan,
    bucketed_sql,
    check_buckets,
    merge,
    most_complete_sources,
    plan,
    run_bucketed,
    window,
)
from ingest.cells.federation import peer_partials
from ingest.registry import CATEGORIES, FieldSpec, Registry
from ingest.runtime import Runtime

SUMMARY_WINDOW = timedelta(hours=1)

# A reading is one timestamped sample of a device (device, seq, index in batch); each of its fields is one stored
# value (one row) in each region that holds it.
_COUNT = (
    "SELECT count(*) AS n_values, count(DISTINCT (device_id, seq, idx)) AS n_readings FROM readings"
    " WHERE site_id = %(site)s AND ts >= %(start)s AND ts < %(end)s"
)
# Latest value of each (device, field) pair, then the most recent per field.
_LATEST = """
SELECT DISTINCT ON (f.name) f.name, r.device_id, r.ts, r.num, r.txt
FROM unnest(%(devices)s::text[], %(names)s::text[]) AS f(device_id, name)
CROSS JOIN LATERAL (
    SELECT device_id, ts, num, txt FROM readings
    WHERE device_id = f.device_id AND name = f.name
    ORDER BY ts DESC, seq DESC, idx DESC
    LIMIT 1
) AS r
ORDER BY f.name, r.ts DESC
"""


def _aggregate(agg: Agg | None) -> AggregatePublic:
    if agg is None:
        return AggregatePublic(min=None, max=None, avg=None, count=0)
    return AggregatePublic(min=agg.min, max=agg.max, avg=agg.avg, count=agg.count)


def _strictest(specs: list[FieldSpec]) -> FieldSpec:
    """The spec whose category is the most restricted (order of ingest.registry.CATEGORIES)."""
    return max(specs, key=lambda s: CATEGORIES.index(s.category))


# --- site summary --------------------------------------------------------------------------------


def site_summary(
    *,
    runtime: Runtime,
    settings: ApiSettings,
    caller: Caller,
    site_id: str,
    limit: int,
    offset: int,
    now: datetime | None = None,
) -> SiteSummaryPublic:
    registry = runtime.registry
    site = registry.sites.get(site_id)
    if site is None:
        raise NotFoundError(f"unknown site {site_id!r}")
    caller.require_site(site_id, site)
    device_ids = sorted(d for d, device in registry.devices.items() if device.site == site_id)
    everything = device_service.list_devices(
        runtime=runtime, settings=settings, site=site_id, country=None, limit=max(len(device_ids), 1), offset=0
    )
    statuses = [d.status for d in everything.items]

    end = now or datetime.now(UTC)
    start = end - SUMMARY_WINDOW
    fields: dict[str, list[FieldSpec]] = defaultdict(list)
    pairs: list[tuple[str, str]] = []
    for device_id in device_ids:
        for name, spec in registry.profile_of(device_id).fields.items():
            fields[name].append(spec)
            pairs.append((device_id, name))
    names = sorted(fields)

    home = site.home_region
    regions = registry.candidate_regions(site)
    counts: dict[str, int] = {}
    reading_counts: dict[str, int] = {}
    latest: dict[str, dict[str, Any]] = {}
    last_hour: dict[str, Agg | None] = {}
    for region in regions:
        store = region_store(runtime, region, default=region)
        with db.query(store.pool, store=store.name, settings=settings) as cur:
            row = cur.execute(_COUNT, {"site": site_id, "start": start, "end": end}).fetchone()
            counts[region] = int(row["n_values"]) if row else 0
            reading_counts[region] = int(row["n_readings"]) if row else 0
            if region != home or not pairs:
                continue
            for row in cur.execute(
                _LATEST, {"devices": [d for d, _ in pairs], "names": [n for _, n in pairs]}
            ).fetchall():
                latest[row["name"]] = row
            p = plan(start, end, "1m")
            rows = run_bucketed(
                cur, bucketed_sql(p, by_name=True, many=True), {**p.params(), "devices": device_ids, "names": names}
            )
            per_name: dict[str, list[Agg]] = defaultdict(list)
            for row in rows:
                per_name[row["name"]].append(Agg.of(row))
            last_hour = {name: merge(aggs) for name, aggs in per_name.items()}

    metrics = []
    for name in names:
        spec = _strictest(fields[name])
        allowed = caller.may_read(home, spec.category)
        row = latest.get(name)
        value = None if row is None else (row["num"] if row["num"] is not None else row["txt"])
        metrics.append(
            MetricSummaryPublic(
                name=name,
                category=spec.category,
                unit=spec.unit,
                devices=len(fields[name]),
                latest=None
                if row is None
                else LatestValuePublic(
                    device_id=row["device_id"], ts=row["ts"], value=value if allowed else None, withheld=not allowed
                ),
                last_hour=_aggregate(last_hour.get(name)) if allowed else None,
                withheld=not allowed,
            )
        )
    return SiteSummaryPublic(
        site_id=site_id,
        name=site.name,
        country=site.country,
        home_region=home,
        candidate_regions=regions,
        window_start=start,
        window_end=end,
        devices_total=len(device_ids),
        online=statuses.count("online"),
        offline=statuses.count("offline"),
        unknown=statuses.count("unknown"),
        readings_last_hour=reading_counts.get(home, 0),
        readings_last_hour_by_region=reading_counts,
        values_last_hour=counts.get(home, 0),
        values_last_hour_by_region=counts,
        metrics=metrics,
        limit=limit,
        offset=offset,
        devices=everything.items[offset : offset + limit],
    )


# --- cross-region metric aggregate ---------------------------------------------------------------


def _declaring(registry: Registry, name: str, site: str | None) -> dict[str, FieldSpec]:
    """device_id -> spec of the devices (of ``site``) whose profile declares ``name``; 400 otherwise."""
    everywhere = {
        device_id: registry.profiles[device.profile].fields[name]
        for device_id, device in sorted(registry.devices.items())
        if name in registry.profiles[device.profile].fields
    }
    if not everywhere:
        known = sorted({n for p in registry.profiles.values() for n in p.fields})
        raise BadParameterError("name", f"unknown metric {name!r} (declared: {', '.join(known)})")
    if site is not None and site not in registry.sites:
        raise BadParameterError("site", f"unknown site {site!r} (known: {', '.join(sorted(registry.sites))})")
    found = {d: s for d, s in everywhere.items() if site is None or registry.devices[d].site == site}
    if not found:
        raise BadParameterError("name", f"no device of site {site!r} declares metric {name!r}")
    return found


def metric_aggregate(
    *,
    runtime: Runtime,
    settings: ApiSettings,
    caller: Caller,
    name: str,
    site: str | None,
    start: datetime | None,
    end: datetime | None,
    bucket: Bucket,
    region: str = ALL_REGIONS,
    limit: int = 100,
    offset: int = 0,
) -> MetricAggregatePublic:
    """A machine metric over the devices of a site (or all sites) as a time series, answered by every candidate
    region (or one) and combined so that no value is counted twice.

    Each region store answers per device and bucket; for each device and bucket the store holding the most values
    is counted (stores hold copies of the same readings: the home region's and the analytics copy). So
    ``total.count == sum(points.count) == sum(regions.values_counted)``, and each region's
    ``values_stored == values_counted + copies_not_counted``."""
    registry = runtime.registry
    devices = _declaring(registry, name, site)
    if site is not None:
        caller.require_site(site, registry.sites[site])
    devices = {d: s for d, s in devices.items() if caller.may_see_site(registry.sites[registry.devices[d].site])}
    if not devices:
        raise ForbiddenError(f"no site in the region scope of user {caller.user!r} has a device declaring {name!r}")
    spec = _strictest(list(devices.values()))
    if restricted(spec.category):
        raise BadParameterError(
            "name", f"metric {name!r} is {spec.category} data: only machine data is aggregated across regions"
        )
    units = {s.unit for s in devices.values()}
    start, end = window(start, end)
    check_buckets(start, end, bucket, settings)
    p = plan(start, end, bucket)

    # home regions first (the authoritative stores win ties), then the other candidates (analytics copy)
    sites = [registry.sites[registry.devices[device_id].site] for device_id in devices]
    homes = sorted({s.home_region for s in sites})
    candidates = homes + sorted({r for s in sites for r in registry.candidate_regions(s)} - set(homes))
    if region == ALL_REGIONS:
        regions = candidates
    elif region in candidates:
        regions = [region]
    else:
        raise BadParameterError(
            "region",
            f"region {region!r} holds no data of these devices (candidate regions: {', '.join(candidates)}, or all)",
        )
    per_region: dict[str, dict[tuple[str, datetime], Agg]] = {}
    params = {**p.params(), "devices": sorted(devices), "names": [name]}
    cell = runtime.extras.get("cell")
    for name_of_region in regions:
        if cell is not None and name_of_region not in runtime.regions:  # hosted by a peer cell: ask it
            rows = peer_partials(
                cell,
                name_of_region,
                name,
                {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "bucket": bucket,
                    "devices": ",".join(sorted(devices)),
                },
                token=_peer_token(runtime),
            )
        else:
            rows = region_partials(runtime, settings, name_of_region, p, params)
        per_region[name_of_region] = {(row["device_id"], row["ts"]): Agg.of(row) for row in rows}
    combined = most_complete_sources(per_region)

    by_bucket: dict[datetime, list[tuple[str, Agg]]] = defaultdict(list)
    by_device: dict[str, list[Agg]] = defaultdict(list)
    counted: dict[str, int] = dict.fromkeys(regions, 0)
    for (device_id, ts), (source, agg) in combined.items():
        by_bucket[ts].append((source, agg))
        by_device[device_id].append(agg)
        counted[source] += agg.count
    points = []
    for ts in sorted(by_bucket):
        merged = merge(agg for _, agg in by_bucket[ts])
        if merged is None:
            continue
        contributions: dict[str, int] = defaultdict(int)
        for source, agg in by_bucket[ts]:
            contributions[source] += agg.count
        points.append(
            AggregatePointPublic(
                ts=ts,
                min=merged.min,
                max=merged.max,
                avg=merged.avg,
                count=merged.count,
                regions=dict(sorted(contributions.items())),
            )
        )
    region_rows = []
    for r in regions:
        stored = sum(a.count for a in per_region[r].values())
        region_rows.append(
            RegionCountPublic(
                region=r, values_stored=stored, values_counted=counted[r], copies_not_counted=stored - counted[r]
            )
        )
    device_rows = [
        DeviceAggregatePublic(
            device_id=device_id,
            site=registry.devices[device_id].site,
            **_aggregate(merge(by_device.get(device_id, []))).model_dump(),
        )
        for device_id in sorted(devices)[offset : offset + limit]
    ]
    return MetricAggregatePublic(
        name=name,
        category=spec.category,
        unit=units.pop() if len(units) == 1 else None,
        site=site,
        region=region,
        bucket=bucket,
        start=start,
        end=end,
        points=points,
        total=_aggregate(merge(agg for _, agg in combined.values())),
        regions=region_rows,
        devices_total=len(devices),
        limit=limit,
        offset=offset,
        devices=device_rows,
    )


def region_partials(
    runtime: Runtime, settings: ApiSettings, region: str, p: Plan, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per device and bucket aggregates (device_id, ts, min, max, sum, count) of one local region store."""
    store = region_store(runtime, region, default=region)
    with db.query(store.pool, store=store.name, settings=settings) as cur:
        return [dict(row) for row in run_bucketed(cur, bucketed_sql(p, by_device=True, many=True), params)]


def metric_partials(
    *,
    runtime: Runtime,
    settings: ApiSettings,
    name: str,
    region: str,
    devices: list[str],
    start: datetime | None,
    end: datetime | None,
    bucket: Bucket,
) -> list[dict[str, Any]]:
    """What a peer cell asks for its cross-cell aggregate (ingest.cells.federation): a **machine** metric's per
    device and bucket aggregates in a region this cell hosts. Anything but machine data is refused here too."""
    registry = runtime.registry
    unknown = sorted(set(devices) - set(registry.devices))
    if unknown:
        raise BadParameterError("devices", f"unknown devices {unknown[:5]}")
    specs = [registry.profile_of(d).fields.get(name) for d in devices]
    if not specs or any(spec is None for spec in specs):
        raise BadParameterError("name", f"{name!r} is not declared by every device asked for")
    if any(spec.category != "machine" for spec in specs if spec is not None):
        raise BadParameterError(
            "name", f"metric {name!r} is not machine data: only aggregates of machine data are combined across cells"
        )
    start, end = window(start, end)
    check_buckets(start, end, bucket, settings)
    p = plan(start, end, bucket)
    rows = region_partials(runtime, settings, region, p, {**p.params(), "devices": sorted(devices), "names": [name]})
    return [
        {
            "device_id": r["device_id"],
            "ts": r["ts"],
            "min": r["min"],
            "max": r["max"],
            "sum": r["sum"],
            "count": int(r["count"]),
        }
        for r in rows
    ]


def _peer_token(runtime: Runtime) -> str | None:
    path = runtime.settings.peer_token_file
    return path.read_text().strip() if path is not None else None
