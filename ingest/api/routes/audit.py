"""The audit trail (roles compliance and admin): list with filters (keyset pages), export as CSV or JSON lines.

A reader scoped to some regions sees the rows that name one of its regions and the rows that name none
(global changes: users, tokens, policy). Exports stream: rows are fetched in batches as they are sent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, TypeAdapter

from ingest.api import db
from ingest.api.auth import AUTH_RESPONSES, require
from ingest.api.closed_sets import closed_set
from ingest.api.deps import ApiSettingsDep, RuntimeDep, check_region_name
from ingest.api.errors import BadParameterError
from ingest.api.exports import export_response
from ingest.api.models import ErrorPublic, IsoDateTime
from ingest.auth.roles import Principal, Role
from ingest.store import audit

router = APIRouter(
    prefix="/audit",
    tags=["audit"],
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorPublic, "description": "The control store is unreachable."},
        400: {"model": ErrorPublic, "description": "since is not before until."},
    },
)
ReaderDep = Annotated[Principal, Depends(require(Role.COMPLIANCE, Role.ADMIN))]
CSV_COLUMNS = ("id", "at", "actor", "action", "target", "regions", "details")


class AuditPage(BaseModel):
    items: list[audit.AuditRow]  # the store's rows as they are: one definition of an audit row
    next_before_id: int | None
    """Pass as before_id for the next (older) page; null on the last page."""


def _filter(
    runtime: RuntimeDep,
    principal: ReaderDep,
    actor: Annotated[str | None, Query(description="Who made the change.")] = None,
    action: Annotated[str | None, Query(description="e.g. token.create, policy.activate, quarantine.release")] = None,
    target: Annotated[str | None, Query(description="e.g. user:alice, token:<id>, policy:<revision>")] = None,
    region: Annotated[
        str | None, Query(description="Rows naming this region.", json_schema_extra=closed_set("regions"))
    ] = None,
    since: Annotated[IsoDateTime | None, Query(description="From (inclusive), ISO 8601 with offset.")] = None,
    until: Annotated[IsoDateTime | None, Query(description="To (exclusive).")] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Rows older than this id (pagination).")
    ] = None,
) -> audit.AuditFilter:
    check_region_name(runtime.registry, region)
    if since is not None and until is not None and since >= until:
        raise BadParameterError("since", "must be before until")
    return audit.AuditFilter(
        actor=actor,
        action=action,
        target=target,
        region=region,
        since=since,
        until=until,
        before_id=before_id,
        scope=principal.regions,
    )


FilterDep = Annotated[audit.AuditFilter, Depends(_filter)]


_ROW_JSON = TypeAdapter(audit.AuditRow)


@router.get("", summary="Audit rows, newest first (roles compliance, admin)")
def list_audit(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    flt: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    with db.query(runtime.control, store="control", settings=settings) as cur:
        rows = audit.list_rows(cur, flt, limit=limit)
    return AuditPage(items=rows, next_before_id=rows[-1].id if len(rows) == limit else None)


@router.get(
    "/export",
    summary="Every matching audit row, streamed as CSV or JSON lines (roles compliance, admin)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
def export_audit(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    flt: FilterDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl (one JSON object a line)")] = "csv",
) -> StreamingResponse:
    def lines(conn: psycopg.Connection[Any]) -> Iterator[str]:
        rows = audit.iter_rows(conn, flt)
        if format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            for i, row in enumerate(rows):
                writer.writerow(
                    [
                        row.id,
                        row.at.isoformat(),
                        row.actor,
                        row.action,
                        row.target,
                        ";".join(row.regions),
                        json.dumps(row.details, sort_keys=True),
                    ]
                )
                if i % 200 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()
        else:
            for row in rows:
                yield _ROW_JSON.dump_json(row).decode() + "\n"

    return export_response(runtime, settings, lines, name="audit", fmt=format)
