"""GET /health: stores reachable, pipeline healthy, policy loaded (503 when any check fails)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.models import HealthPublic
from ingest.api.service import health as service

router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "",
    summary="Service health",
    responses={503: {"model": HealthPublic, "description": "A store, the pipeline or the policy is down."}},
)
def get_health(runtime: RuntimeDep, settings: ApiSettingsDep, response: Response) -> HealthPublic:
    result = service.health(runtime=runtime, settings=settings)
    if result.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return result
