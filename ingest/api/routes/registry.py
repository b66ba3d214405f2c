"""GET /regions and GET /sites: the registry's stores and factories."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import RuntimeDep
from ingest.api.models import RegionPublic, SitePublic

# every authenticated user (no role needed): the registry's regions and sites
router = APIRouter(tags=["registry"], dependencies=guard(), responses=AUTH_RESPONSES)


@router.get("/regions", summary="Regions (stores) of the registry")
def list_regions(runtime: RuntimeDep) -> list[RegionPublic]:
    registry = runtime.registry
    return [
        RegionPublic(
            name=name,
            country=region.country,
            description=region.description,
            recipient=region.recipient,
            analytics=name == registry.analytics_region,
            configured=name in runtime.regions,
        )
        for name, region in registry.regions.items()
    ]


@router.get("/sites", summary="Sites (factories) of the registry")
def list_sites(runtime: RuntimeDep) -> list[SitePublic]:
    registry = runtime.registry
    devices = Counter(device.site for device in registry.devices.values())
    return [
        SitePublic(
            site_id=site_id,
            name=site.name,
            country=site.country,
            home_region=site.home_region,
            candidate_regions=registry.candidate_regions(site),
            ciio=site.entity.ciio,
            devices=devices[site_id],
        )
        for site_id, site in registry.sites.items()
    ]
