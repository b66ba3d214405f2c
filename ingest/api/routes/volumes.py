"""Measured transfer volumes per (site, region) and the thresholds they approach (docs/volumes.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import RuntimeDep
from ingest.auth.roles import Role

router = APIRouter(dependencies=guard(Role.ENGINEER, Role.COMPLIANCE), tags=["decisions"], responses=AUTH_RESPONSES)


@router.get(
    "/volumes",
    summary="Distinct data subjects transferred per site and region, and the volume thresholds they near",
    description="Per cross-border (site, candidate region): the subjects the ingest measured (year to date and "
    "preceding 12 months, sensitive ones apart), the volume the registry declares, the effective volume the "
    "policy reads (the larger of the two), and the thresholds of data/thresholds.json the flow is approaching "
    "(from INGEST_VOLUME_WARN_RATIO of the count at which its mechanism changes) or has reached. Counts only, "
    'no personal data. `{"measuring": false, "routes": []}` when this process measures nothing. '
    "Roles: engineer, compliance.",
)
def get_volumes(runtime: RuntimeDep) -> dict[str, Any]:
    tracker = runtime.extras.get("volumes")
    if tracker is None:
        return {"measuring": False, "routes": [], "warnings": 0}
    routes = tracker.routes(runtime.registry.sites, runtime.registry.regions, runtime.registry.candidate_regions)
    return {
        "measuring": True,
        "sync_error": tracker.last_sync_error,
        "warn_ratio": tracker.warn_ratio,
        "routes": [r.to_json() for r in routes],
        "warnings": sum(len(r.warnings) for r in routes),
    }
