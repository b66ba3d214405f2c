"""The decision log (list with filters and a total, streamed export as CSV or JSON lines) and the
origin -> region flow matrix derived from it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.closed_sets import closed_set
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep, check_region_name
from ingest.api.errors import BadParameterError
from ingest.api.exports import export_response
from ingest.api.models import DecisionPage, ErrorPublic, FlowsPublic, IsoDateTime, Outcome
from ingest.api.service import decisions as service
from ingest.auth.roles import Role
from ingest.registry import Category

router = APIRouter(
    dependencies=guard(Role.ENGINEER, Role.COMPLIANCE),
    tags=["decisions"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "The control store is unreachable."}},
)


def decision_filter(
    runtime: RuntimeDep,
    origin: Annotated[
        str | None, Query(pattern=r"^[A-Za-z]{2}$", description="Origin country (ISO 3166-1 alpha-2).")
    ] = None,
    region: Annotated[
        str | None, Query(description="Region (store) the decision was about.", json_schema_extra=closed_set("regions"))
    ] = None,
    category: Category | None = None,
    outcome: Outcome | None = None,
    device_id: str | None = None,
    since: Annotated[IsoDateTime | None, Query(description="Decided at or after (ISO 8601; naive = UTC).")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Decided before (exclusive).")] = None,
) -> service.DecisionFilter:
    check_region_name(runtime.registry, region)
    if since is not None and until is not None and since >= until:
        raise BadParameterError("since", "must be before until")
    return service.DecisionFilter(
        origin_country=origin.upper() if origin else None,
        region=region,
        category=category,
        outcome=outcome,
        device_id=device_id,
        since=service.utc(since),
        until=service.utc(until),
    )


DecisionFilterDep = Annotated[service.DecisionFilter, Depends(decision_filter)]


@router.get(
    "/decisions",
    summary="Policy decisions, newest first, with the total matching the filters",
    responses={
        400: {"model": ErrorPublic, "description": "since not before until."},
        422: {
            "model": ErrorPublic,
            "description": "Malformed parameter, or a region that is not a "
            "registry region (the accepted ones are listed).",
        },
    },
)
def list_decisions(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    flt: DecisionFilterDep,
    include_input: Annotated[bool, Query(description="Add the exact policy input of each decision.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> DecisionPage:
    return service.list_decisions(
        runtime=runtime,
        settings=settings,
        flt=flt,
        include_input=include_input,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/decisions/export",
    summary="Every decision matching the filters (as in the list), streamed as CSV or JSON lines, newest first",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
        400: {"model": ErrorPublic, "description": "since not before until."},
        422: {
            "model": ErrorPublic,
            "description": "Malformed parameter, or a region that is not a "
            "registry region (the accepted ones are listed).",
        },
    },
)
def export_decisions(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    flt: DecisionFilterDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl (one JSON object a line)")] = "csv",
    include_input: Annotated[bool, Query(description="Add the exact policy input (jsonl; csv: as JSON text).")] = False,
) -> StreamingResponse:
    return export_response(
        runtime,
        settings,
        lambda conn: service.export_lines(conn, flt, fmt=format, include_input=include_input),
        name="decisions",
        fmt=format,
    )


@router.get("/flows", summary="Origin country -> region flow matrix over a recent window")
def get_flows(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    window_s: Annotated[int, Query(ge=1, le=7 * 86400, description="Window length in seconds.")] = 300,
) -> FlowsPublic:
    return service.flows(runtime=runtime, settings=settings, window_s=window_s)
