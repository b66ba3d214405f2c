"""GET /sites/{site}/summary: one factory at a glance (devices, status, last hour of telemetry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.caller import CallerDep
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.models import ErrorPublic, SiteSummaryPublic
from ingest.api.service import telemetry
from ingest.auth.roles import Role

router = APIRouter(
    dependencies=guard(Role.ENGINEER, Role.OPERATOR),
    prefix="/sites",
    tags=["telemetry"],
    responses={
        **AUTH_RESPONSES,
        404: {"model": ErrorPublic, "description": "Unknown site."},
        503: {"model": ErrorPublic, "description": "A store is unreachable."},
    },
)


@router.get(
    "/{site_id}/summary",
    summary="Devices, online count, readings of the last hour and per-metric latest/min/max/avg of a site",
    description=(
        "Device status comes from the gateways' birth/death messages (control store). Readings of the last "
        "hour are counted in every candidate region (home region and analytics copy); latest values and "
        "last-hour aggregates are read from the home region (rollups for whole minutes). Restricted fields "
        "(every category but machine) are withheld unless the caller is authorised for the home region "
        "(the user's region scope). Roles: engineer; operator (sites of its regions, machine fields only). "
        "The device list is paginated (limit, offset)."
    ),
)
def get_site_summary(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    caller: CallerDep,
    site_id: Annotated[str, Path(description="Site id from the registry.")],
    limit: Annotated[int, Query(ge=1, le=1000, description="Devices per page.")] = 100,
    offset: Offset = 0,
) -> SiteSummaryPublic:
    return telemetry.site_summary(
        runtime=runtime, settings=settings, caller=caller, site_id=site_id, limit=limit, offset=offset
    )
