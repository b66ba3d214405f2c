"""Devices of the registry with their status, and their telemetry read from a region store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.deps import ApiSettingsDep, DeviceDep, RuntimeDep, region_store
from ingest.api.models import Bucket, DevicePage, DevicePublic, ErrorPublic, LatestPublic, SeriesPublic
from ingest.api.service import devices as device_service
from ingest.api.service import readings as reading_service

router = APIRouter(
    prefix="/devices",
    tags=["devices"],
    responses={404: {"model": ErrorPublic, "description": "Unknown device."},
               503: {"model": ErrorPublic, "description": "A store is unreachable."}},
)

RegionQuery = Annotated[
    str | None, Query(description="Region store to read; default: the home region of the device's site.")
]


@router.get("", summary="Registry devices with ingest progress and gateway status")
def list_devices(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    site: Annotated[str | None, Query(description="Only devices of this site.")] = None,
    country: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="Only devices of sites in this country.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
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
    responses={400: {"model": ErrorPublic, "description": "Unknown region."}},
)
def get_latest(
    device: DeviceDep, runtime: RuntimeDep, settings: ApiSettingsDep, region: RegionQuery = None
) -> LatestPublic:
    store = region_store(runtime, region, default=device.site.home_region)
    return reading_service.latest(ref=device, store=store, settings=settings)


@router.get(
    "/{device_id}/series",
    summary="Time-bucketed min/max/avg/count of a numeric field",
    responses={400: {"model": ErrorPublic, "description": "Unknown field or region, bad window."}},
)
def get_series(
    device: DeviceDep,
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    name: Annotated[str, Query(description="Field name, declared in the device's profile.")],
    start: Annotated[datetime | None, Query(description="Inclusive; default: end - 1 h. Naive = UTC.")] = None,
    end: Annotated[datetime | None, Query(description="Exclusive; default: now (or start + 1 h).")] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width.")] = "1m",
    region: RegionQuery = None,
) -> SeriesPublic:
    store = region_store(runtime, region, default=device.site.home_region)
    return reading_service.series(
        ref=device, store=store, settings=settings, name=name, start=start, end=end, bucket=bucket
    )
