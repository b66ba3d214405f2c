"""One change of a site or device through the API: checked against the effective registry and stored.

:func:`apply_change` runs inside the caller's transaction on the control store (so the caller adds its
audit row to the same commit). It takes the registry's write lock, reads the API entries, builds the
registry as it would be after the change and validates it exactly like the YAML file (a device needs an
existing site and profile, a site an existing home region). Only then is the entry written and the revision
bumped. ``authorize`` is called with the home regions the change touches, before (the entry as it is) and
after (the entry as it would be), and raises to refuse; ``authorize_facts`` with the residency facts an
update changes (:data:`RESIDENCY_FACTS`: country, home region, safeguards and their dates, entity, volume,
purpose of a site; site and profile of a device), and raises to refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from ingest.errors import IngestError
from ingest.registry import Device, Registry, Site, overlay
from ingest.registry_sync import EffectiveRegistry, effective
from ingest.store import registry_store
from ingest.store.registry_store import EntryKind

Action = Literal["create", "update", "decommission"]

RESIDENCY_FACTS: dict[EntryKind, tuple[str, ...]] = {
    "site": ("country", "home_region", "safeguards", "safeguard_dates", "entity", "volume", "purpose"),
    "device": ("site", "profile", "sparkplug"),
}
"""The fields that decide where a site's or device's data may go: the policy input (origin country, entity,
volume, purpose, safeguards in force), the candidate regions (home region), a device's site (its country)
and profile (its fields' categories), and a device's Sparkplug address (which edge node's messages take this
device's origin and categories). Changing them on an existing entry needs the role compliance."""


def residency_changes(kind: EntryKind, before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The residency facts an update changes (in :data:`RESIDENCY_FACTS` order); none for a create or a
    decommission (no data was routed with the entry before, or none will be after)."""
    if before is None or after is None:
        return []
    return [name for name in RESIDENCY_FACTS[kind] if before.get(name) != after.get(name)]


class RegistryChangeError(IngestError):
    """A registry change that cannot be made as asked."""


class EntryExistsError(RegistryChangeError):
    """Create of an id the effective registry already has."""


class EntryNotFoundError(RegistryChangeError):
    """Update or decommission of an id the effective registry does not have."""


class EntryInUseError(RegistryChangeError):
    """Decommission of a site that devices still belong to."""

    def __init__(self, site_id: str, devices: list[str]) -> None:
        shown = ", ".join(devices[:10]) + (f" and {len(devices) - 10} more" if len(devices) > 10 else "")
        super().__init__(
            f"site {site_id!r} still has {len(devices)} device(s): {shown}; decommission or move them first"
        )
        self.site_id = site_id
        self.devices = devices


@dataclass(frozen=True)
class ChangeResult:
    kind: EntryKind
    entry_id: str
    action: Action
    revision: int
    before: dict[str, Any] | None
    """The entry as it was (JSON), None for a create."""
    after: dict[str, Any] | None
    """The entry as it is now (JSON), None for a decommission."""
    regions: frozenset[str]
    """Home regions the change touched (before and after)."""
    residency_facts: tuple[str, ...] = ()
    """The residency facts it changed (see :data:`RESIDENCY_FACTS`)."""


def home_region(registry: Registry, kind: EntryKind, entry_id: str) -> str | None:
    """The home region of a site, or of a device's site; None if the registry does not have the entry."""
    if kind == "site":
        site = registry.sites.get(entry_id)
        return site.home_region if site else None
    device = registry.devices.get(entry_id)
    return registry.sites[device.site].home_region if device else None


def _spec_of(registry: Registry, kind: EntryKind, entry_id: str) -> dict[str, Any] | None:
    entries: dict[str, Site] | dict[str, Device] = registry.sites if kind == "site" else registry.devices
    entry = entries.get(entry_id)
    return entry.model_dump(mode="json") if entry is not None else None


def apply_change(
    conn: psycopg.Connection[Any],
    *,
    base: Registry,
    kind: EntryKind,
    entry_id: str,
    action: Action,
    spec: Site | Device | None,
    actor: str,
    authorize: Callable[[frozenset[str]], None],
    authorize_facts: Callable[[list[str]], None] | None = None,
) -> ChangeResult:
    """Validate and store one change (inside the caller's transaction); see the module docstring."""
    if (spec is None) != (action == "decommission"):
        raise ValueError("spec: required for create and update, None for decommission")
    registry_store.lock_revision(conn)
    current = effective(base, registry_store.load_snapshot(conn))
    before = _spec_of(current.registry, kind, entry_id)
    if action == "create" and before is not None:
        raise EntryExistsError(
            f"{kind} {entry_id!r} already exists ({current.source(kind, entry_id)}); use PUT to change it"
        )
    if action != "create" and before is None:
        raise EntryNotFoundError(f"unknown {kind} {entry_id!r}")
    old_region = home_region(current.registry, kind, entry_id)
    if old_region is not None:
        authorize(frozenset({old_region}))  # an entry outside the caller's scope: refused before validation
    if action == "decommission" and kind == "site":
        users = sorted(d for d, dev in current.registry.devices.items() if dev.site == entry_id)
        if users:
            raise EntryInUseError(entry_id, users)
    after = spec.model_dump(mode="json") if spec is not None else None
    changed = _overlaid(current, kind, entry_id, after)  # RegistryEntryError names the field at fault
    new_region = home_region(changed, kind, entry_id)
    regions = frozenset(r for r in (old_region, new_region) if r is not None)
    authorize(regions)
    facts = residency_changes(kind, before, after)
    if authorize_facts is not None:
        authorize_facts(facts)
    revision = registry_store.write_entry(conn, kind=kind, entry_id=entry_id, spec=after, actor=actor)
    return ChangeResult(kind, entry_id, action, revision, before, after, regions, tuple(facts))


def _overlaid(current: EffectiveRegistry, kind: EntryKind, entry_id: str, spec: dict[str, Any] | None) -> Registry:
    """The registry as it would be with the change applied on top of the current one."""
    sites: dict[str, dict[str, Any] | None] = {}
    devices: dict[str, dict[str, Any] | None] = {}
    (sites if kind == "site" else devices)[entry_id] = spec
    return overlay(current.registry, sites=sites, devices=devices)
