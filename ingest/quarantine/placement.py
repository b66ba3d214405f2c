"""Where a quarantined payload may lawfully live. Pure: no I/O.

A rejection always keeps its metadata. Its payload is held in the first region where every category it may
contain is allowed to live (the site's home region first, then the others by name), and nowhere (metadata only)
when there is none, when the origin is unknown or disputed (unknown device, spoofing), or when the payload is
oversized. Content that cannot be classified (an unparseable payload, undeclared fields) is taken to possibly
hold :data:`UNCLASSIFIED` categories too, on top of those the device's profile declares: the cautious side.

The router (:mod:`ingest.pipeline.router`) makes every rejection through :func:`rejection`, with the regions it
may hold payloads in (in a cell, only the cell's own: a quarantined payload is raw, and a raw payload never leaves
its cell) and the policy's verdict per (site, region, category); the consumer writes each held payload to its
region (:func:`held_payloads`, :class:`ingest.quarantine.store.QuarantineWriter`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Collection, Iterable

from ingest.records import ID_NAMESPACE, RejectionRecord
from ingest.registry import Registry, Site

UNCLASSIFIED = ("personal", "sensitive_personal")
"""Categories that content the ingest cannot classify may hold."""

Allows = Callable[[Site, str, str], bool]
"""Whether the policy lets data of (site, region, category) live in that region."""


def quarantine_id(topic: str, payload: bytes, code: str, category: str | None) -> uuid.UUID:
    """Deterministic, so a redelivered message is quarantined once."""
    digest = hashlib.sha256(payload).hexdigest()
    return uuid.uuid5(ID_NAMESPACE, f"q/{code}/{category}/{topic}/{digest}")


def lawful_region(site: Site, categories: tuple[str, ...], regions: Iterable[str], allows: Allows) -> str | None:
    """The first of ``regions`` where every category may live: the site's home region first, then the others
    by name; None if there is none."""
    regions = list(regions)
    others = sorted(r for r in regions if r != site.home_region)
    first = [site.home_region] if site.home_region in regions else []
    for region_name in [*first, *others]:
        if all(allows(site, region_name, c) for c in categories):
            return region_name
    return None


def rejection(
    topic: str,
    payload: bytes,
    code: str,
    detail: str,
    device_id: str | None,
    seq: int | None,
    *,
    hold: bool,
    registry: Registry,
    regions: Collection[str],
    allows: Allows,
    categories: tuple[str, ...] | None = None,
) -> RejectionRecord:
    """A rejection whose payload is held, when ``hold``, in the lawful region among ``regions`` for the categories
    it may contain (``categories``, by default those of the device's profile and :data:`UNCLASSIFIED`); metadata
    only where there is none or where the origin is unknown (no registered device)."""
    site = registry.site_of(device_id) if device_id else None
    origin = site[1].country if site else None
    region: str | None = None
    kinds: tuple[str, ...] = ()
    if hold and site is not None and device_id is not None:
        kinds = categories or tuple(
            sorted({f.category for f in registry.profile_of(device_id).fields.values()} | set(UNCLASSIFIED))
        )
        region = lawful_region(site[1], kinds, regions, allows)
        if region is None:
            detail += f"; no region may hold {'/'.join(kinds)} data from {origin}: payload discarded"
    category = "/".join(kinds) if kinds else None
    return RejectionRecord(
        topic,
        code,
        detail,
        len(payload),
        device_id,
        seq,
        quarantine_id=quarantine_id(topic, payload, code, category),
        origin_country=origin,
        category=category,
        payload_region=region,
        payload=payload if region else None,
    )


HeldPayload = tuple[uuid.UUID | None, str, bytes]
"""(quarantine id, topic, payload): a row of a region's ``quarantine_payloads`` (a held rejection has an id)."""


def held_payloads(rejections: Iterable[RejectionRecord]) -> dict[str, list[HeldPayload]]:
    """The payloads ``rejections`` hold, per region, in order."""
    held: dict[str, list[HeldPayload]] = {}
    for r in rejections:
        if r.payload_region is not None and r.payload is not None:
            held.setdefault(r.payload_region, []).append((r.quarantine_id, r.topic, r.payload))
    return held
