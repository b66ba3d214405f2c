"""Quarantine review and release (compliance role), and sequence gaps per device.

Until the authentication issue lands, the caller names itself in the ``X-Actor`` header, which is
recorded with every release (placeholder for the authenticated identity).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query
from pydantic import BaseModel

from ingest.api import db
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.models import ErrorPublic
from ingest.quarantine import QuarantineError

router = APIRouter(tags=["quarantine"], responses={503: {"model": ErrorPublic, "description": "A store is down."}})

State = Literal["held", "discarded", "released"]


class QuarantineItem(BaseModel):
    quarantine_id: uuid.UUID
    received_at: datetime
    topic: str
    device_id: str | None
    seq: int | None
    code: str
    detail: str
    category: str | None
    origin_country: str | None
    payload_bytes: int
    payload_region: str | None
    state: State
    released_at: datetime | None
    released_by: str | None
    release_result: dict[str, Any] | None


class QuarantineDetail(QuarantineItem):
    payload: str | None = None  # the held payload (UTF-8, replacement characters for invalid bytes)


class QuarantinePage(BaseModel):
    total: int
    limit: int
    offset: int
    counts: dict[str, int]
    items: list[QuarantineItem]


class ReleaseResponse(BaseModel):
    quarantine_id: uuid.UUID
    released_by: str
    policy_revision: str
    rows: dict[str, int]
    decisions: list[dict[str, Any]]


class Gap(BaseModel):
    id: int
    device_id: str
    first_missing: int
    last_missing: int
    missing: int
    detected_at: datetime
    closed_at: datetime | None


class GapPage(BaseModel):
    total: int
    open: int
    items: list[Gap]


_COLUMNS = ("quarantine_id, received_at, topic, device_id, seq, code, detail, category, origin_country, "
            "payload_bytes, payload_region, state, released_at, released_by, release_result")


@router.get("/quarantine", summary="Quarantined messages, newest first, with counts per state")
def list_quarantine(
    runtime: RuntimeDep, settings: ApiSettingsDep,
    state: Annotated[State | None, Query(description="held: payload kept; discarded: metadata only")] = None,
    code: Annotated[str | None, Query(description="Reason code, e.g. malformed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> QuarantinePage:
    where = "quarantine_id IS NOT NULL AND (%(state)s::text IS NULL OR state = %(state)s)" \
            " AND (%(code)s::text IS NULL OR code = %(code)s)"
    params = {"state": state, "code": code, "limit": limit, "offset": offset}
    with db.query(runtime.control, store="control", settings=settings) as cur:
        counts = {r["state"]: r["n"] for r in cur.execute(
            "SELECT state, count(*) AS n FROM rejections WHERE quarantine_id IS NOT NULL GROUP BY state").fetchall()}
        total = cur.execute(f"SELECT count(*) AS n FROM rejections WHERE {where}", params).fetchone()["n"]  # type: ignore[index]
        rows = cur.execute(f"SELECT {_COLUMNS} FROM rejections WHERE {where} ORDER BY received_at DESC, id DESC"
                           " LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    return QuarantinePage(total=total, limit=limit, offset=offset, counts=counts,
                          items=[QuarantineItem.model_validate(r) for r in rows])


@router.get("/quarantine/{quarantine_id}", summary="One quarantined message, with its payload when held")
def get_quarantine(runtime: RuntimeDep, settings: ApiSettingsDep, quarantine_id: uuid.UUID) -> QuarantineDetail:
    with db.query(runtime.control, store="control", settings=settings) as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM rejections WHERE quarantine_id = %s", (quarantine_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"unknown quarantine item {quarantine_id}")
    detail = QuarantineDetail.model_validate(row)
    if detail.state == "held" and detail.payload_region and runtime.quarantine is not None:
        found = runtime.quarantine.payload(detail.payload_region, quarantine_id)
        if found is not None:
            detail.payload = found[1].decode("utf-8", errors="replace")
    return detail


@router.post("/quarantine/{quarantine_id}/release", summary="Re-run the decision and route the data, once",
             responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def release_quarantine(
    runtime: RuntimeDep, quarantine_id: uuid.UUID,
    x_actor: Annotated[str, Header(min_length=1, max_length=200, description="Who releases (until auth)")],
) -> ReleaseResponse:
    if runtime.quarantine is None:
        raise HTTPException(503, "the ingest pipeline is not running in this process")
    try:
        result = runtime.quarantine.release(quarantine_id, actor=x_actor)
    except QuarantineError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return ReleaseResponse(quarantine_id=result.quarantine_id, released_by=result.released_by,
                           policy_revision=result.policy_revision, rows=result.rows, decisions=result.decisions)


@router.get("/gaps", tags=["devices"], summary="Missing batch sequence ranges per device")
def list_gaps(
    runtime: RuntimeDep, settings: ApiSettingsDep,
    device_id: str | None = None,
    state: Annotated[Literal["open", "closed", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> GapPage:
    where = "(%(device)s::text IS NULL OR device_id = %(device)s) AND (%(state)s = 'all'" \
            " OR (%(state)s = 'open') = (closed_at IS NULL))"
    params = {"device": device_id, "state": state, "limit": limit, "offset": offset}
    with db.query(runtime.control, store="control", settings=settings) as cur:
        total = cur.execute(f"SELECT count(*) AS n FROM sequence_gaps WHERE {where}", params).fetchone()["n"]  # type: ignore[index]
        open_ = cur.execute("SELECT count(*) AS n FROM sequence_gaps WHERE closed_at IS NULL").fetchone()["n"]  # type: ignore[index]
        rows = cur.execute(
            "SELECT id, device_id, first_missing, last_missing, last_missing - first_missing + 1 AS missing,"
            f" detected_at, closed_at FROM sequence_gaps WHERE {where} ORDER BY detected_at DESC, id DESC"
            " LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    return GapPage(total=total, open=open_, items=[Gap.model_validate(r) for r in rows])
