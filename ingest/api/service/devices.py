"""Registry devices joined with their ingest progress and gateway status (control store)."""

from __future__ import annotations

from typing import Literal

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.deps import DeviceRef, resolve_device
from ingest.api.errors import BadParameterError
from ingest.api.models import DevicePage, DevicePublic, GatewayPublic, ProgressPublic
from ingest.runtime import Runtime

_PROGRESS = """
SELECT device_id, last_seq, batches, readings, last_seen_at
FROM device_progress WHERE device_id = ANY(%s)
"""
# The gateway that listed a device most recently decides whether it is online.
_GATEWAYS = """
SELECT DISTINCT ON (d.device_id) d.device_id, g.gateway_id, g.state, g.at, g.reason
FROM gateway_status g CROSS JOIN LATERAL jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(g.devices) = 'array' THEN g.devices ELSE '[]'::jsonb END
) AS d(device_id)
WHERE d.device_id = ANY(%s)
ORDER BY d.device_id, g.at DESC
"""


def list_devices(
    *, runtime: Runtime, settings: ApiSettings, site: str | None, country: str | None, limit: int, offset: int
) -> DevicePage:
    """One page of registry devices (ordered by id), filtered by site and/or country."""
    registry = runtime.registry
    if site is not None and site not in registry.sites:
        raise BadParameterError("site", f"unknown site {site!r} (known: {', '.join(sorted(registry.sites))})")
    selected = [
        device_id
        for device_id, device in sorted(registry.devices.items())
        if (site is None or device.site == site) and (country is None or registry.sites[device.site].country == country)
    ]
    page = selected[offset : offset + limit]
    refs = [resolve_device(registry, device_id) for device_id in page]
    return DevicePage(total=len(selected), limit=limit, offset=offset, items=_with_status(runtime, settings, refs))


def get_device(*, runtime: Runtime, settings: ApiSettings, ref: DeviceRef) -> DevicePublic:
    """One registry device with its progress and gateway status."""
    return _with_status(runtime, settings, [ref])[0]


def _with_status(runtime: Runtime, settings: ApiSettings, refs: list[DeviceRef]) -> list[DevicePublic]:
    ids = [ref.device_id for ref in refs]
    progress: dict[str, ProgressPublic] = {}
    gateways: dict[str, GatewayPublic] = {}
    if ids:
        with db.query(runtime.control, store="control", settings=settings) as cur:
            for row in cur.execute(_PROGRESS, (ids,)).fetchall():
                progress[row["device_id"]] = ProgressPublic.model_validate(row)
            for row in cur.execute(_GATEWAYS, (ids,)).fetchall():
                gateways[row["device_id"]] = GatewayPublic.model_validate(row)
    return [_public(ref, progress.get(ref.device_id), gateways.get(ref.device_id)) for ref in refs]


def _public(ref: DeviceRef, progress: ProgressPublic | None, gateway: GatewayPublic | None) -> DevicePublic:
    status: Literal["online", "offline", "unknown"] = "unknown"
    if gateway is not None:
        status = "online" if gateway.state == "online" else "offline"
    return DevicePublic(
        device_id=ref.device_id,
        site=ref.site_id,
        site_name=ref.site.name,
        country=ref.site.country,
        home_region=ref.site.home_region,
        profile=ref.device.profile,
        description=ref.device.description,
        status=status,
        gateway=gateway,
        progress=progress,
    )
