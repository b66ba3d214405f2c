"""Pipeline counters (JSON) and Prometheus metrics (text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.service import store_jobs
from ingest.auth.roles import Role

router = APIRouter(tags=["stats"])


@router.get(
    "/stats",
    summary="Counters of the ingest pipeline",
    description="The pipeline's snapshot (messages, rejections, rows_by_region, decisions, inflight, "
    "last_commit_at, store_errors, broker_connected, healthy, policy_revision), passed through; "
    '`{"pipeline": null}` when this process runs no pipeline. Roles: operator, engineer, compliance.',
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    responses=AUTH_RESPONSES,
)
def get_stats(runtime: RuntimeDep) -> dict[str, Any]:
    if runtime.pipeline is None:
        return {"pipeline": None}
    return runtime.pipeline.snapshot()


@router.get(
    "/metrics",
    summary="Prometheus metrics (open: counters only, no personal data; for the Prometheus scrape)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
def get_metrics(runtime: RuntimeDep, settings: ApiSettingsDep) -> Response:
    store_jobs.store_jobs_by_region(runtime, settings)  # the ingest_store_job_* gauges (cached a few seconds)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
