"""The decision log and the origin -> region flow matrix derived from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.closed_sets import closed_set
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep, check_region_name
from ingest.api.models import DecisionPage, ErrorPublic, FlowsPublic, Outcome
from ingest.api.service import decisions as service
from ingest.auth.roles import Role
from ingest.registry import Category

router = APIRouter(
    dependencies=guard(Role.ENGINEER, Role.COMPLIANCE),
    tags=["decisions"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "The control store is unreachable."}},
)


@router.get(
    "/decisions",
    summary="Policy decisions, newest first",
    responses={422: {"model": ErrorPublic, "description": "Malformed parameter, or a region that is not a "
                     "registry region (the accepted ones are listed)."}},
)
def list_decisions(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    origin: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="Origin country (ISO 3166-1 alpha-2).")
    ] = None,
    region: Annotated[str | None, Query(description="Region (store) the decision was about.",
                                        json_schema_extra=closed_set("regions"))] = None,
    category: Category | None = None,
    outcome: Outcome | None = None,
    device_id: str | None = None,
    include_input: Annotated[bool, Query(description="Add the exact policy input of each decision.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> DecisionPage:
    check_region_name(runtime.registry, region)
    filters: dict[str, str | None] = {
        "origin_country": origin.upper() if origin else None,
        "region": region,
        "category": category,
        "outcome": outcome,
        "device_id": device_id,
    }
    return service.list_decisions(
        runtime=runtime, settings=settings, filters=filters, include_input=include_input,
        limit=limit, offset=offset,
    )


@router.get("/flows", summary="Origin country -> region flow matrix over a recent window")
def get_flows(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    window_s: Annotated[int, Query(ge=1, le=7 * 86400, description="Window length in seconds.")] = 300,
) -> FlowsPublic:
    return service.flows(runtime=runtime, settings=settings, window_s=window_s)
