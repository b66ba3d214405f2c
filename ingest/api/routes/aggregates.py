"""GET /metrics/{name}/aggregate: a machine metric over devices and regions, answered per region and combined."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.models import Bucket, ErrorPublic, IsoDateTime, MetricAggregatePublic
from ingest.api.service import telemetry
from ingest.auth.roles import Role

router = APIRouter(
    dependencies=guard(Role.ENGINEER),
    prefix="/metrics",
    tags=["telemetry"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "A region store is unreachable."}},
)


@router.get(
    "/{name}/aggregate",
    summary="min/max/avg/count of a machine metric over a site's devices, across regions",
    description=(
        "Every candidate region of the sites involved (home regions and the analytics region) answers from "
        "its rollups (raw rows for partial edge buckets); the answers are combined per device and bucket by "
        "taking the store that holds the most readings of it, because stores hold copies of the same readings. "
        "Only machine metrics are aggregated across regions (personal and state-classified data never are)."
    ),
    responses={400: {"model": ErrorPublic, "description": "Unknown metric or site, restricted metric, "
                     "inverted window, too many points (names the limit)."}},
)
def get_metric_aggregate(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    name: Annotated[str, Path(description="Field name declared in device profiles, e.g. power_kw.")],
    site: Annotated[str | None, Query(description="Only devices of this site (default: every site).")] = None,
    start: Annotated[IsoDateTime | None, Query(description="Inclusive; default: end - 1 h. Naive = UTC.")] = None,
    end: Annotated[IsoDateTime | None, Query(description="Exclusive; default: now (or start + 1 h).")] = None,
    bucket: Annotated[Bucket, Query(description="Bucket width of points.")] = "1h",
    limit: Annotated[int, Query(ge=1, le=1000, description="Per-device aggregates per page.")] = 100,
    offset: Offset = 0,
) -> MetricAggregatePublic:
    return telemetry.metric_aggregate(
        runtime=runtime, settings=settings, name=name, site=site, start=start, end=end, bucket=bucket,
        limit=limit, offset=offset,
    )
