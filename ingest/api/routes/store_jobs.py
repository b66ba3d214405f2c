"""GET /stores/jobs: the background jobs of every region store (TimescaleDB policies) and their health."""

from __future__ import annotations

from fastapi import APIRouter

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.models import StoreJobsListPublic
from ingest.api.service import store_jobs as service
from ingest.auth.roles import Role

router = APIRouter(tags=["stats"])


@router.get(
    "/stores/jobs",
    summary="Background jobs of the region stores",
    description="Per region store: its backend and, on TimescaleDB, every policy job (compression, retention, "
    "aggregate refreshes) with last run status, consecutive failures, last error, next start and the problem "
    "found (failing, overdue, paused, missing). Cached for a few seconds. Roles: operator, engineer.",
    dependencies=guard(Role.OPERATOR, Role.ENGINEER),
    responses=AUTH_RESPONSES,
)
def get_store_jobs(runtime: RuntimeDep, settings: ApiSettingsDep) -> StoreJobsListPublic:
    stores = service.store_jobs_by_region(runtime, settings)
    return StoreJobsListPublic(stores=[stores[region] for region in sorted(stores)])
