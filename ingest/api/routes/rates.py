"""GET /rates: readings and stored values per region as time series (the Live page's rates panel).

A *reading* is one timestamped sample of a device (device, seq, index in batch); each of its fields is one
*stored value* per region that holds it. Counted in each region store by sample time, per step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ingest.api import db
from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, RuntimeDep, region_store
from ingest.api.errors import BadParameterError
from ingest.api.models import ErrorPublic
from ingest.auth.roles import Role
from ingest.errors import StoreUnavailableError
from ingest.store.rollups import ORIGIN

router = APIRouter(tags=["stats"], responses=AUTH_RESPONSES)

_RATES = """
SELECT date_bin(%(step)s, ts, %(origin)s) AS ts, count(DISTINCT (device_id, seq, idx)) AS readings,
       count(*) AS values
FROM readings WHERE ts >= %(start)s AND ts < %(end)s
GROUP BY 1 ORDER BY 1
"""


class RatePointPublic(BaseModel):
    ts: datetime = Field(description="Start of the step (aligned on UTC multiples).")
    readings: int = Field(description="Readings (timestamped samples of a device) with a sample time in the step.")
    values: int = Field(description="Stored values (one per field of a reading) with a sample time in the step.")


class RegionRatesPublic(BaseModel):
    region: str
    country: str
    points: list[RatePointPublic] = Field(description="Steps holding data, oldest first.")
    error: str | None = Field(default=None, description="Why this store did not answer (the others still do).")


class RatesPublic(BaseModel):
    window_s: int
    step_s: int
    start: datetime
    end: datetime
    regions: list[RegionRatesPublic]


@router.get(
    "/rates",
    summary="Readings and stored values per region and step over a recent window (time series)",
    description="Counted in each region store by sample time; a store that cannot answer gets an error and no "
    "points while the others answer. Per second: divide by step_s. Roles: operator, engineer, compliance.",
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    responses={400: {"model": ErrorPublic, "description": "More than 720 steps in the window (a larger step)."}},
)
def get_rates(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    window_s: Annotated[int, Query(ge=60, le=86400, description="Window length in seconds.")] = 900,
    step_s: Annotated[int, Query(ge=5, le=3600, description="Step (bucket) length in seconds.")] = 30,
) -> RatesPublic:
    if window_s // step_s > 720:
        raise BadParameterError(
            "step_s", f"{window_s // step_s} steps over {window_s} s (limit 720): use a larger step"
        )
    end = datetime.now(UTC)
    start = end - timedelta(seconds=window_s)
    params = {"step": timedelta(seconds=step_s), "origin": ORIGIN, "start": start, "end": end}
    out = []
    for name, region in runtime.registry.regions.items():
        try:
            store = region_store(runtime, name, default=name)
            with db.query(store.pool, store=store.name, settings=settings) as cur:
                rows = cur.execute(_RATES, params).fetchall()
            out.append(
                RegionRatesPublic(
                    region=name, country=region.country, points=[RatePointPublic.model_validate(r) for r in rows]
                )
            )
        except StoreUnavailableError as exc:
            out.append(RegionRatesPublic(region=name, country=region.country, points=[], error=exc.reason))
    return RatesPublic(window_s=window_s, step_s=step_s, start=start, end=end, regions=out)
