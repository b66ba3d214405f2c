"""Quarantine review, release and dismissal (role compliance), and sequence gaps per device (operator, engineer).

Region scope: a compliance officer scoped to some regions sees, inspects, releases and dismisses only items
whose payload is held in one of them (items kept as metadata only, without a payload region, are listed for
everyone with the role). Releases (and refused releases), dismissals and payload views are recorded with the
authenticated user's name in the audit trail. Lifecycle: docs/quarantine.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from ingest.api import db
from ingest.api.auth import AUTH_RESPONSES, guard, require, require_scope
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.models import ErrorPublic
from ingest.auth.roles import Principal, Role
from ingest.quarantine import store
from ingest.quarantine.service import (
    CLOSED_STATES,
    OPEN_STATES,
    QuarantineError,
    UnknownItemError,
    release_note,
)

router = APIRouter(
    tags=["quarantine"], responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "A store is down."}}
)
ComplianceDep = Annotated[Principal, Depends(require(Role.COMPLIANCE))]

State = Literal["held", "discarded", "released", "dismissed", "expired"]
StateFilter = Literal["held", "discarded", "released", "dismissed", "expired", "open", "closed"]


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
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = Field(
        default=None, description="Why it was dismissed or expired ('released' for a release)."
    )
    releasable: bool = Field(
        default=False, description="A release can be tried now (held, and a code whose release can succeed)."
    )
    release_note: str = Field(default="", description="What change makes a release succeed, or why none can.")

    @model_validator(mode="after")
    def _note(self) -> QuarantineItem:
        self.releasable, self.release_note = release_note(self.code, self.state)
        return self


class QuarantineDetail(QuarantineItem):
    payload: str | None = None  # the held payload (UTF-8, replacement characters for invalid bytes)


class QuarantinePage(BaseModel):
    total: int
    limit: int
    offset: int
    counts: dict[str, int] = Field(
        description="Items per state (in the caller's scope), plus 'open': held + "
        "discarded, what still needs a decision."
    )
    items: list[QuarantineItem]


class DismissRequest(BaseModel):
    reason: str = Field(
        min_length=3,
        max_length=1000,
        description="Why the item is closed without release (recorded with the item and in the audit trail).",
    )


class DismissResponse(BaseModel):
    quarantine_id: uuid.UUID
    state: State
    closed_by: str
    closed_at: datetime
    close_reason: str
    payload_deleted: bool


class ReleaseResponse(BaseModel):
    quarantine_id: uuid.UUID
    released_by: str
    policy_revision: str
    rows: dict[str, int]
    decisions: list[dict[str, Any]]
    other_rejections: list[dict[str, str]] = Field(
        default_factory=list, description="Rejections of the same message with another code: separate items."
    )


class Gap(BaseModel):
    id: int
    device_id: str
    first_missing: int
    last_missing: int
    missing: int
    detected_at: datetime
    closed_at: datetime | None
    closed_by: str | None = Field(
        default=None,
        description="Why it closed: null when the missing batches arrived, "
        "'rebirth' when a Sparkplug edge node's new birth re-stated every metric (the "
        "missing messages are lost; docs/sparkplug.md).",
    )


class GapPage(BaseModel):
    total: int
    open: int
    items: list[Gap]


def _status(exc: QuarantineError) -> int:
    """The HTTP status of a refusal of the quarantine service: 404 for an unknown item, 409 for an item whose state
    or code does not allow it (:class:`ItemStateError`)."""
    return 404 if isinstance(exc, UnknownItemError) else 409


@router.get("/quarantine", summary="Quarantined messages, newest first, with counts per state")
def list_quarantine(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    principal: ComplianceDep,
    state: Annotated[
        StateFilter | None,
        Query(
            description="held: payload kept; discarded: metadata only; released, dismissed, expired: closed; "
            "open: held or discarded; closed: released, dismissed or expired"
        ),
    ] = None,
    code: Annotated[str | None, Query(description="Reason code, e.g. malformed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> QuarantinePage:
    regions = None if principal.regions is None else sorted(principal.regions)
    states: list[str] | None = {"open": list(OPEN_STATES), "closed": list(CLOSED_STATES)}.get(
        state or "", [state] if state else None
    )
    with db.query(runtime.control, store="control", settings=settings) as cur:
        counts, total, rows = store.list_items(cur, scope=regions, states=states, code=code, limit=limit, offset=offset)
    counts["open"] = sum(counts.get(s, 0) for s in OPEN_STATES)
    return QuarantinePage(
        total=total, limit=limit, offset=offset, counts=counts, items=[QuarantineItem.model_validate(r) for r in rows]
    )


@router.get(
    "/quarantine/{quarantine_id}",
    summary="One quarantined message, with its payload when held (each view is in the audit trail)",
    responses={404: {"model": ErrorPublic, "description": "Unknown quarantine item."}},
)
def get_quarantine(
    runtime: RuntimeDep, settings: ApiSettingsDep, principal: ComplianceDep, quarantine_id: uuid.UUID
) -> QuarantineDetail:
    detail = QuarantineDetail.model_validate(_item(runtime, settings, principal, quarantine_id, "inspecting"))
    if detail.state == "held" and detail.payload_region and runtime.quarantine is not None:
        found = runtime.quarantine.payload(detail.payload_region, quarantine_id)
        if found is not None:
            runtime.quarantine.record_view(
                quarantine_id, actor=principal.user, region=detail.payload_region, payload_bytes=len(found[1])
            )
            detail.payload = found[1].decode("utf-8", errors="replace")
    return detail


@router.post(
    "/quarantine/{quarantine_id}/release",
    summary="Re-run the decision and route the data, once",
    responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}},
)
def release_quarantine(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    principal: ComplianceDep,
    quarantine_id: uuid.UUID,
) -> ReleaseResponse:
    _item(runtime, settings, principal, quarantine_id, "releasing")
    if runtime.quarantine is None:
        raise HTTPException(503, "the ingest pipeline is not running in this process")
    try:
        result = runtime.quarantine.release(quarantine_id, actor=principal.user)
    except QuarantineError as exc:
        status = _status(exc)
        runtime.quarantine.record_refusal(quarantine_id, actor=principal.user, reason=str(exc), status=status)
        raise HTTPException(status, str(exc)) from None
    return ReleaseResponse(
        quarantine_id=result.quarantine_id,
        released_by=result.released_by,
        policy_revision=result.policy_revision,
        rows=result.rows,
        decisions=result.decisions,
        other_rejections=result.other_rejections,
    )


@router.post(
    "/quarantine/{quarantine_id}/dismiss",
    summary="Close an open item without release, with a reason; its payload is deleted",
    responses={404: {"model": ErrorPublic}, 409: {"model": ErrorPublic, "description": "Already closed."}},
)
def dismiss_quarantine(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    principal: ComplianceDep,
    quarantine_id: uuid.UUID,
    body: DismissRequest,
) -> DismissResponse:
    _item(runtime, settings, principal, quarantine_id, "dismissing")
    if runtime.quarantine is None:
        raise HTTPException(503, "the ingest pipeline is not running in this process")
    try:
        closed = runtime.quarantine.dismiss(quarantine_id, actor=principal.user, reason=body.reason.strip())
    except QuarantineError as exc:
        raise HTTPException(_status(exc), str(exc)) from None
    return DismissResponse(
        quarantine_id=closed.quarantine_id,
        state="dismissed",
        closed_by=closed.closed_by,
        closed_at=closed.closed_at,
        close_reason=closed.close_reason,
        payload_deleted=closed.payload_deleted,
    )


def _item(
    runtime: RuntimeDep, settings: ApiSettingsDep, principal: Principal, quarantine_id: uuid.UUID, doing: str
) -> dict[str, Any]:
    """The item's row; 404 when unknown, 403 when its payload region is outside the principal's scope."""
    with db.query(runtime.control, store="control", settings=settings) as cur:
        row = store.get_item(cur, quarantine_id)
    if row is None:
        raise HTTPException(404, f"unknown quarantine item {quarantine_id}")
    if row["payload_region"] is not None:
        require_scope(principal, {row["payload_region"]}, f"{doing} quarantine item {quarantine_id}")
    return dict(row)


@router.get(
    "/gaps",
    tags=["devices"],
    summary="Missing batch sequence ranges per device",
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
)
def list_gaps(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    device_id: str | None = None,
    state: Annotated[Literal["open", "closed", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> GapPage:
    where = (
        "(%(device)s::text IS NULL OR device_id = %(device)s) AND (%(state)s = 'all'"
        " OR (%(state)s = 'open') = (closed_at IS NULL))"
    )
    params = {"device": device_id, "state": state, "limit": limit, "offset": offset}
    with db.query(runtime.control, store="control", settings=settings) as cur:
        total = cur.execute(f"SELECT count(*) AS n FROM sequence_gaps WHERE {where}", params).fetchone()["n"]  # type: ignore[index]
        open_ = cur.execute("SELECT count(*) AS n FROM sequence_gaps WHERE closed_at IS NULL").fetchone()["n"]  # type: ignore[index]
        rows = cur.execute(
            "SELECT id, device_id, first_missing, last_missing, last_missing - first_missing + 1 AS missing,"
            f" detected_at, closed_at, closed_by FROM sequence_gaps WHERE {where} ORDER BY detected_at DESC, id DESC"
            " LIMIT %(limit)s OFFSET %(offset)s",
            params,
        ).fetchall()
    return GapPage(total=total, open=open_, items=[Gap.model_validate(r) for r in rows])
