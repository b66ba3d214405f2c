"""Rejected messages: metadata only (the payload is not kept), with counts per reason code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.models import ErrorPublic, RejectionPage
from ingest.api.service import rejections as service
from ingest.auth.roles import Role

router = APIRouter(
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    prefix="/rejections",
    tags=["rejections"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "The control store is unreachable."}},
)


@router.get("", summary="Rejected messages, newest first, with counts per code")
def list_rejections(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    code: Annotated[str | None, Query(description="Only this reason code, e.g. unknown_device.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> RejectionPage:
    return service.list_rejections(runtime=runtime, settings=settings, code=code, limit=limit, offset=offset)
