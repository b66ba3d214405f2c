"""Operators register sites and devices: create, update, decommission, through the API (issue 7).

The YAML registry is the deployment's baseline; changes made here are stored in the control store and
overlaid on it (``ingest.registry_sync``): an entry with the same id replaces the file's, a decommission
hides it. Every replica follows within ``INGEST_REGISTRY_REFRESH_S``; the replica that answered has already
switched. Scoped to regions: a site is changed only if its home region is in the caller's scope (both the
old and the new one for a move), a device only if its site's home region is (both sites' for a move).
Each change and its audit row (``registry.<kind>.<action>``, with the entry before and after and the
residency facts it changed) commit in one transaction.

Roles: creating and decommissioning sites and devices needs ``operator``. An update needs ``operator`` or
``compliance``; an update that changes a *residency fact* (``ingest.registry_changes.RESIDENCY_FACTS``: a
site's country, home region, safeguards, entity, volume or purpose; a device's site or profile, which decide
its country and its fields' categories) needs ``compliance`` (a user may hold both roles): those facts decide
where personal data goes (issue 12: an operator moved cn-shenzhen to the US and CN badges landed in us-east).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Path
from psycopg_pool import PoolClosed, PoolTimeout
from pydantic import BaseModel, Field

from ingest.api import closed_sets
from ingest.api.auth import AUTH_RESPONSES, PrincipalDep, require, require_scope
from ingest.api.closed_sets import InvalidChoiceError
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.errors import ConflictError, ForbiddenError, NotFoundError
from ingest.api.models import ErrorPublic
from ingest.auth.roles import Principal, Role
from ingest.errors import RegistryError, StoreUnavailableError
from ingest.registry import Device, Registry, RegistryEntryError, Site
from ingest.registry_changes import (
    Action,
    ChangeResult,
    EntryExistsError,
    EntryInUseError,
    EntryNotFoundError,
    apply_change,
    home_region,
)
from ingest.registry_sync import EffectiveRegistry, RegistrySync, Source
from ingest.runtime import Runtime
from ingest.store.audit import record
from ingest.store.registry_store import EntryKind

log = logging.getLogger("ingest.api.registry")

EntryId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Id used in MQTT topics: letters, digits, '_', '.', '-'.",
    ),
]

router = APIRouter(
    tags=["registry"],
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorPublic, "description": "The control store is down, or no registry sync here."},
    },
)

OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]
UpdaterDep = Annotated[Principal, Depends(require(Role.OPERATOR, Role.COMPLIANCE))]


class InvalidEntryError(InvalidChoiceError):
    """The entry does not fit the registry (unknown site, profile or region): 422, ``parameter`` names the
    field and ``accepted`` lists what it may be."""

    def __init__(self, field: str, message: str, registry: Registry) -> None:
        name = field.split(".")[-1]
        accepted = sorted(registry.sites) if name == "site" else closed_sets.accepted_for(name, registry)
        super().__init__(field, message, accepted or [], location="body")


class SiteCreate(Site):
    """A new site: its id and the fields of a site of the YAML registry."""

    site_id: EntryId


class DeviceCreate(Device):
    """A new device: its id, its site and its profile (both must exist)."""

    device_id: EntryId


class EntryPublic(BaseModel):
    kind: EntryKind
    id: str
    source: Source = Field(description="file: from INGEST_REGISTRY_FILE; api: created or changed through the API.")
    home_region: str
    spec: dict[str, Any] = Field(description="The entry's fields, as in the YAML registry.")
    updated_at: datetime | None = Field(default=None, description="Last change through the API (source api).")
    updated_by: str | None = None


class DecommissionedPublic(BaseModel):
    kind: EntryKind
    id: str
    decommissioned_at: datetime
    decommissioned_by: str


class RegistryPublic(BaseModel):
    revision: int = Field(description="Registry revision this replica runs (0: no change through the API yet).")
    sites: list[EntryPublic]
    devices: list[EntryPublic]
    decommissioned: list[DecommissionedPublic]


class ChangePublic(BaseModel):
    action: Action
    revision: int = Field(description="The registry revision this change created.")
    entry: EntryPublic | None = Field(description="The entry now (None after a decommission).")
    previous: dict[str, Any] | None = Field(description="The entry's fields before the change (None: created).")


def _sync(runtime: Runtime) -> RegistrySync:
    if runtime.registry_sync is None:
        raise StoreUnavailableError("control", "registry changes need the ingest service's registry sync")
    return runtime.registry_sync


def _entry(state: EffectiveRegistry, kind: EntryKind, entry_id: str) -> EntryPublic | None:
    registry = state.registry
    item: Site | Device | None = (registry.sites if kind == "site" else registry.devices).get(entry_id)
    region = home_region(registry, kind, entry_id)
    if item is None or region is None:
        return None
    stored = state.entry(kind, entry_id) if state.source(kind, entry_id) == "api" else None
    return EntryPublic(
        kind=kind,
        id=entry_id,
        source=state.source(kind, entry_id),
        home_region=region,
        spec=item.model_dump(mode="json"),
        updated_at=stored.updated_at if stored else None,
        updated_by=stored.updated_by if stored else None,
    )


@router.get("/registry", summary="The effective registry: the YAML file overlaid with API changes, with sources")
def get_registry(runtime: RuntimeDep, _principal: PrincipalDep) -> RegistryPublic:
    state = _sync(runtime).current
    sites = [_entry(state, "site", s) for s in sorted(state.registry.sites)]
    devices = [_entry(state, "device", d) for d in sorted(state.registry.devices)]
    gone = [
        DecommissionedPublic(kind=e.kind, id=e.entry_id, decommissioned_at=e.updated_at, decommissioned_by=e.updated_by)
        for e in sorted(state.entries.values(), key=lambda e: (e.kind, e.entry_id))
        if e.spec is None
    ]
    return RegistryPublic(
        revision=state.revision, sites=[s for s in sites if s], devices=[d for d in devices if d], decommissioned=gone
    )


def _change(
    runtime: Runtime,
    timeout_s: float,
    principal: Principal,
    kind: EntryKind,
    entry_id: str,
    action: Action,
    spec: Site | Device | None,
) -> ChangePublic:
    sync = _sync(runtime)

    def authorize(regions: frozenset[str]) -> None:
        require_scope(principal, regions, f"{action} of {kind} {entry_id!r}")

    def authorize_facts(facts: list[str]) -> None:
        needed = Role.COMPLIANCE if facts else Role.OPERATOR
        if needed not in principal.roles:
            has = ", ".join(sorted(r.value for r in principal.roles)) or "none"
            what = (
                f"changing {', '.join(facts)} of {kind} {entry_id!r} (residency facts: they decide where its "
                "data may be stored)"
                if facts
                else f"{action} of {kind} {entry_id!r}"
            )
            raise ForbiddenError(f"{what} needs the role {needed.value}; user {principal.user!r} has: {has}")

    try:
        with runtime.control.connection(timeout=timeout_s) as conn, conn.transaction():
            result = apply_change(
                conn,
                base=sync.base,
                kind=kind,
                entry_id=entry_id,
                action=action,
                spec=spec,
                actor=principal.user,
                authorize=authorize,
                authorize_facts=authorize_facts,
            )
            record(
                conn,
                actor=principal.user,
                action=f"registry.{kind}.{action}",
                target=f"{kind}:{entry_id}",
                regions=result.regions,
                details={
                    "revision": result.revision,
                    "before": result.before,
                    "after": result.after,
                    "residency_facts": list(result.residency_facts),
                },
            )
    except (EntryExistsError, EntryInUseError) as exc:
        raise ConflictError(str(exc)) from None
    except EntryNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    except RegistryEntryError as exc:
        raise InvalidEntryError(exc.field or exc.where, exc.message, sync.current.registry) from None
    except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
        raise StoreUnavailableError("control", f"cannot change the registry: {exc}") from None
    log.info("registry %s %s %s by %s: revision %d", kind, entry_id, action, principal.user, result.revision)
    return _answer(sync, result)


def _answer(sync: RegistrySync, result: ChangeResult) -> ChangePublic:
    """Switch this replica now (the others follow within INGEST_REGISTRY_REFRESH_S) and describe the change."""
    try:
        sync.refresh()
    except (StoreUnavailableError, RegistryError) as exc:  # committed; the refresher retries
        log.warning("registry revision %d committed but not loaded here yet: %s", result.revision, exc)
    entry = None
    if result.after is not None:
        state = sync.current
        entry = _entry(state, result.kind, result.entry_id) if state.revision >= result.revision else None
    return ChangePublic(action=result.action, revision=result.revision, entry=entry, previous=result.before)


_SiteId = Annotated[str, Path(description="Site id.")]
_DeviceId = Annotated[str, Path(description="Device id.")]
_CHANGE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "Unknown site or device."},
    409: {"model": ErrorPublic, "description": "The id exists already, or the site still has devices."},
    422: {"model": ErrorPublic, "description": "Invalid entry; `parameter` names the field."},
}


@router.post("/sites", status_code=201, responses=_CHANGE, summary="Register a site (role operator)")
def create_site(
    body: SiteCreate, runtime: RuntimeDep, settings: ApiSettingsDep, principal: OperatorDep
) -> ChangePublic:
    site = Site.model_validate(body.model_dump(exclude={"site_id"}))
    return _change(runtime, settings.pool_timeout_s, principal, "site", body.site_id, "create", site)


@router.put(
    "/sites/{site_id}",
    responses=_CHANGE,
    summary="Change a site (role operator; country, home region, safeguards, entity, volume or purpose: "
    "role compliance)",
)
def update_site(
    site_id: _SiteId, body: Site, runtime: RuntimeDep, settings: ApiSettingsDep, principal: UpdaterDep
) -> ChangePublic:
    return _change(runtime, settings.pool_timeout_s, principal, "site", site_id, "update", body)


@router.delete("/sites/{site_id}", responses=_CHANGE, summary="Decommission a site without devices (role operator)")
def delete_site(
    site_id: _SiteId, runtime: RuntimeDep, settings: ApiSettingsDep, principal: OperatorDep
) -> ChangePublic:
    return _change(runtime, settings.pool_timeout_s, principal, "site", site_id, "decommission", None)


@router.post("/devices", status_code=201, responses=_CHANGE, summary="Register a device (role operator)")
def create_device(
    body: DeviceCreate, runtime: RuntimeDep, settings: ApiSettingsDep, principal: OperatorDep
) -> ChangePublic:
    device = Device.model_validate(body.model_dump(exclude={"device_id"}))
    return _change(runtime, settings.pool_timeout_s, principal, "device", body.device_id, "create", device)


@router.put(
    "/devices/{device_id}",
    responses=_CHANGE,
    summary="Change a device (role operator; its site or profile: role compliance)",
)
def update_device(
    device_id: _DeviceId, body: Device, runtime: RuntimeDep, settings: ApiSettingsDep, principal: UpdaterDep
) -> ChangePublic:
    return _change(runtime, settings.pool_timeout_s, principal, "device", device_id, "update", body)


@router.delete("/devices/{device_id}", responses=_CHANGE, summary="Decommission a device (role operator)")
def delete_device(
    device_id: _DeviceId, runtime: RuntimeDep, settings: ApiSettingsDep, principal: OperatorDep
) -> ChangePublic:
    return _change(runtime, settings.pool_timeout_s, principal, "device", device_id, "decommission", None)
