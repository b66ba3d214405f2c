"""Typed dependencies of the routes: the runtime, the API settings, a registry device, a region store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from psycopg_pool import ConnectionPool

from ingest.api.closed_sets import InvalidChoiceError
from ingest.api.config import ApiSettings
from ingest.api.errors import NotFoundError, OtherCellError
from ingest.errors import StoreUnavailableError
from ingest.registry import Device, Profile, Registry, Site
from ingest.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_api_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.api_settings
    return settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

MAX_OFFSET = 1_000_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip (pagination).")]
"""The ``offset`` of every paginated list (bounded: PostgreSQL's OFFSET is a bigint)."""
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]


def get_registry(runtime: RuntimeDep) -> Registry:
    return runtime.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


@dataclass(frozen=True)
class DeviceRef:
    """A registry device with its site and profile resolved."""

    device_id: str
    device: Device
    site_id: str
    site: Site
    profile: Profile


def resolve_device(registry: Registry, device_id: str) -> DeviceRef:
    """The registry entry of ``device_id``; NotFoundError (404) when the registry does not know it."""
    device = registry.devices.get(device_id)
    if device is None:
        raise NotFoundError(f"unknown device {device_id!r}")
    return DeviceRef(
        device_id=device_id,
        device=device,
        site_id=device.site,
        site=registry.sites[device.site],
        profile=registry.profiles[device.profile],
    )


def get_device(
    registry: RegistryDep, device_id: Annotated[str, Path(description="Device id from the registry.")]
) -> DeviceRef:
    return resolve_device(registry, device_id)


DeviceDep = Annotated[DeviceRef, Depends(get_device)]


@dataclass(frozen=True)
class RegionStore:
    """A region and the pool of its store."""

    name: str
    pool: ConnectionPool


def region_store(runtime: Runtime, region: str | None, *, default: str) -> RegionStore:
    """The store of ``region`` (``default`` when None): 422 if not a registry region, 503 if no pool."""
    name = default if region is None else region
    check_region_name(runtime.registry, name)
    pool = runtime.regions.get(name)
    cell = runtime.extras.get("cell")
    if pool is None and cell is not None and name not in cell.regions:
        owner = cell.topology.cell_of_region(name)
        raise OtherCellError(name, owner, cell.topology.cells[owner].api)
    if pool is None:
        raise StoreUnavailableError(name, "no database is configured for this region")
    return RegionStore(name=name, pool=pool)


def check_region_name(registry: Registry, region: str | None, parameter: str = "region") -> None:
    """422 listing the regions when a region parameter is not a registry region."""
    if region is not None and region not in registry.regions:
        known = sorted(registry.regions)
        raise InvalidChoiceError(parameter, f"unknown region {region!r} (known: {', '.join(known)})", known)
