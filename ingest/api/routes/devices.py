"""Devices of the registry with their status, and their telemetry read from a region store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.caller import CallerDep
from ingest.api.closed_sets import closed_set
from ingest.api.deps import ApiSettingsDep, DeviceDep, Offset, RuntimeDep, region_store
from ingest.api.errors import BadParameterError
from ingest.api.models import (
    DevicePage,
    DevicePublic,
    ErrorPublic,
    IsoDateTime,
    LatestPublic,
    SeriesBucket,
    SeriesPublic,
)
from ingest.api.service import devices as device_service
from ingest.api.service import readings as reading_service
from ingest.auth.roles import Role

# registry metadata and status: every role that works with devices; telemetry values: engineers
router = APIRouter(
    prefix="/devices",
    tags=["devices"],
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    responses={
        **AUTH_RESPONSES,
        404: {"model": ErrorPublic, "description": "Unknown device."},
        503: {"model": ErrorPublic, "description": "A store is unreachable."},
    },
)

RegionQuery = Annotated[
    str | None,
    Query(
        description="Region store to read; default: the home region of the device's site.",
        json_schema_extra=closed_set("regions"),
    ),
]


@router.get(
    "",
    summary="Registry devices with ingest progress and gateway status",
    responses={400: {"model": ErrorPublic, "description": "Unknown site (the known ones are named)."}},
)
def list_devices(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    site: Annotated[str | None, Query(description="Only devices of this site.")] = None,
    country: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="Only devices of sites in this country.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> DevicePage:
    return device_service.list_devices(
        runtime=runtime,
        settings=settings,
        site=site,
        country=country.upper() if country else None,
        limit=limit,
        offset=offset,
    )


@router.get("/{device_id}", summary="One device")
def get_device(device: DeviceDep, runtime: RuntimeDep, settings: ApiSettingsDep) -> DevicePublic:
    return device_service.get_device(runtime=runtime, settings=settings, ref=device)


@router.get(
    "/{device_id}/latest",
    summary="Latest value of every field of a device in a region store",
    description=(
        "Values of restricted fields (every category but machine) stored in a region the caller is not "
        "authorised for (outside the user's region scope) are redacted: value null, withheld true. Roles: "
        "engineer; operator (machine fields of the sites of its regions; other fields withheld)."
    ),
    dependencies=guard(Role.ENGINEER, Role.OPERATOR),
    responses={
        422: {
            "model": ErrorPublic,
            "description": "A region that is not a registry region (the accepted ones are listed).",
        }
    },
)
def get_latest(
    device: DeviceDep, runtime: RuntimeDep, settings: ApiSettingsDep, caller: CallerDep, region: RegionQuery = None
) -> LatestPublic:
    caller.require_site(device.site_id, device.site)
    store = region_store(runtime, region, default=device.site.home_region)
    return reading_service.latest(ref=device, store=store, settings=settings, caller=caller)


@router.get(
    "/{device_id}/series",
    summary="Bucketed min/max/avg/count of a numeric field, or its raw readings",
    description=(
        "bucket=10s|1m|5m|1h|1d: min/max/avg/count per bucket (aligned on UTC multiples), served from the "
        "rollups (readings_1m for 1m/5m, readings_1h for 1h/1d; 10s from raw rows); raw rows answer the "
        "partial buckets at the window's edges. bucket=raw: the stored readings, oldest first, paginated with "
        "limit and cursor (text fields included). region=all (bucketed, machine fields only): every candidate region "
        "of the device's site answers, and each bucket takes the store holding the most readings of it. "
        "Restricted fields of a region outside the user's region scope: 403. Roles: engineer; operator (machine "
        "fields of the sites of its regions)."
    ),
    dependencies=guard(Role.ENGINEER, Role.OPERATOR),
    responses={
        400: {
            "model": ErrorPublic,
            "description": "Unknown field, text field, inverted window, too many points "
            "(names the limit), bad cursor, region=all with bucket=raw.",
        },
        403: {"model": ErrorPublic, "description": "Restricted field of a region the caller may not read."},
    },
)
def get_series(
    device: DeviceDep,
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    caller: CallerDep,
    name: Annotated[str, Query(description="Field name, declared in the device's profile.")],
    start: Annotated[IsoDateTime | None, Query(description="Inclusive; default: end - 1 h. Naive = UTC.")] = None,
    end: Annotated[IsoDateTime | None, Query(description="Exclusive; default: now (or start + 1 h).")] = None,
    bucket: Annotated[SeriesBucket, Query(description="Bucket width, or raw for the stored readings.")] = "1m",
    region: Annotated[
        str | None,
        Query(
            description="Region store to read (default: the site's home region), or 'all' to combine the "
            "candidate regions (bucketed machine fields only).",
            json_schema_extra=closed_set("regions+all"),
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, description="bucket=raw: points per page (at most the API's point limit).")
    ] = 1000,
    cursor: Annotated[str | None, Query(description="bucket=raw: next_cursor of the previous page.")] = None,
) -> SeriesPublic:
    caller.require_site(device.site_id, device.site)
    if region == reading_service.ALL_REGIONS:
        if bucket == "raw":
            raise BadParameterError("region", "region=all combines buckets: use a bucket, or one region for raw")
        return reading_service.series_all_regions(
            ref=device, runtime=runtime, settings=settings, name=name, start=start, end=end, bucket=bucket
        )
    store = region_store(runtime, region, default=device.site.home_region)
    if bucket == "raw":
        return reading_service.raw_series(
            ref=device,
            store=store,
            settings=settings,
            caller=caller,
            name=name,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
    return reading_service.series(
        ref=device, store=store, settings=settings, caller=caller, name=name, start=start, end=end, bucket=bucket
    )
