"""GET /metrics/{name}/aggregate: a machine metric over devices and regions, answered per region and combined."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.caller import CallerDep
from ingest.api.closed_sets import closed_set
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.models import Bucket, ErrorPublic, IsoDateTime, MetricAggregatePublic
from ingest.api.service import telemetry
from ingest.auth.roles import Role

router = APIRouter(
    dependencies=guard(Role.ENGINEER, Role.OPERATOR),
    prefix="/metrics",
    tags=["telemetry"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "A region store is unreachable."}},
)


@router.get(
    "/{name}/aggregate",
    summary="A machine metric over a site's (or every site's) devices as a time series, across regions",
    description=(
        "points: min/max/avg/count per bucket over every device (the time series); total: the whole window; "
        "devices: one page of per-device aggregates. region=all (default): every candidate region of the sites "
        "involved (home regions and the analytics region) answers from its rollups (raw rows for partial edge "
        "buckets), and for each device and bucket the store holding the most values of it is counted, because "
        "stores hold copies of the same readings. The arithmetic: total.count == sum(points.count) == "
        "sum(regions.values_counted); per region, values_stored == values_counted + copies_not_counted (so "
        "sum(regions.values_stored) exceeds total.count by the copies). region=<name>: that store alone. Only "
        "machine metrics are aggregated across regions (personal and state-classified data never are). Roles: "
        "engineer; operator (the sites of its regions)."
    ),
    responses={
        400: {
            "model": ErrorPublic,
            "description": "Unknown metric or site, restricted metric, "
            "inverted window, too many points (names the limit).",
        }
    },
)
def get_metric_aggregate(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    caller: CallerDep,
    name: Annotated[str, Path(description="Field name declared in device profiles, e.g. power_kw.")],
    site: Annotated[str | None, Query(description="Only devices of this site (default: every site).")] = None,
    start: Annotated[IsoDateTime | None, Query(description="Inclusive; default: end - 1 h. Naive = UTC.")] = None,
    end: Annotated[IsoDateTime | None, Query(description="Exclusive; default: now (or start + 1 h).")] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width of points.")] = "1h",
    region: Annotated[str, Query(description="all: every candidate region, combined; or one region store.")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000, description="Per-device aggregates per page.")] = 100,
    offset: Offset = 0,
) -> MetricAggregatePublic:
    return telemetry.metric_aggregate(
        runtime=runtime,
        settings=settings,
        caller=caller,
        name=name,
        site=site,
        start=start,
        end=end,
        bucket=bucket,
        region=region,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{name}/partials",
    summary="Per device and bucket aggregates of a machine metric in one region this cell hosts (for peer cells)",
    description=(
        "What a peer residency cell asks to combine a cross-cell aggregate (docs/cells.md): min, max, sum and "
        "count per device and bucket of a **machine** metric in a region hosted here. Any other category is "
        "refused (400): only aggregates of machine data are combined across borders. Roles: engineer."
    ),
    dependencies=guard(Role.ENGINEER),
    responses={
        400: {"model": ErrorPublic, "description": "Not machine data, unknown devices, window or bucket."},
        421: {"model": ErrorPublic, "description": "The region is hosted by another cell."},
    },
)
def get_metric_partials(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    name: Annotated[str, Path(description="A machine field declared by every device asked for.")],
    region: Annotated[str, Query(description="A region this cell hosts.", json_schema_extra=closed_set("regions"))],
    devices: Annotated[str, Query(min_length=1, description="Comma-separated device ids.")],
    start: Annotated[IsoDateTime | None, Query(description="Inclusive.")] = None,
    end: Annotated[IsoDateTime | None, Query(description="Exclusive.")] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width.")] = "1h",
) -> dict[str, list[dict[str, Any]]]:
    rows = telemetry.metric_partials(
        runtime=runtime,
        settings=settings,
        name=name,
        region=region,
        devices=[d for d in devices.split(",") if d],
        start=start,
        end=end,
        bucket=bucket,
    )
    return {"rows": rows}
