"""The audit trail (control store, table ``audit_log``): who changed what, when. Append-only.

:func:`record` inserts in the caller's transaction, so a change and its audit row commit (or roll back)
together. The database refuses UPDATE, DELETE and TRUNCATE on ``audit_log`` (a trigger, migration 0004).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_INSERT = (
    "INSERT INTO audit_log (actor, action, target, regions, details) VALUES (%s, %s, %s, %s, %s)"
)


def record(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    target: str,
    regions: Iterable[str] = (),
    details: Mapping[str, object] | None = None,
) -> None:
    """Insert one audit row in the caller's transaction (the change and its audit commit together)."""
    if not actor:
        raise ValueError("audit: actor is required")
    if not action:
        raise ValueError("audit: action is required")
    conn.execute(_INSERT, (actor, action, target, sorted(set(regions)), Jsonb(dict(details or {}))))


@dataclass(frozen=True)
class AuditFilter:
    """Filters of a listing; every field optional. ``region`` matches rows that name that region."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    region: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    """Keyset pagination: rows with an id below this one (newest first)."""
    scope: frozenset[str] | None = None
    """A reader's region scope: only rows naming one of these regions, or no region (global changes).
    None: every row."""


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    regions: list[str]
    details: dict[str, Any]


def _where(flt: AuditFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if flt.actor is not None:
        clauses.append("actor = %s")
        params.append(flt.actor)
    if flt.action is not None:
        clauses.append("action = %s")
        params.append(flt.action)
    if flt.target is not None:
        clauses.append("target = %s")
        params.append(flt.target)
    if flt.region is not None:
        clauses.append("%s = ANY(regions)")
        params.append(flt.region)
    if flt.since is not None:
        clauses.append("at >= %s")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("at < %s")
        params.append(flt.until)
    if flt.before_id is not None:
        clauses.append("id < %s")
        params.append(flt.before_id)
    if flt.scope is not None:
        clauses.append("(regions = '{}' OR regions && %s::text[])")
        params.append(sorted(flt.scope))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_rows(cur: psycopg.Cursor[Any], flt: AuditFilter, *, limit: int) -> list[AuditRow]:
    """Newest first, at most ``limit`` rows."""
    where, params = _where(flt)
    cur.execute(
        f"SELECT id, at, actor, action, target, regions, details FROM audit_log{where}"
        " ORDER BY id DESC LIMIT %s",
        [*params, limit],
    )
    return [_row(r) for r in cur.fetchall()]


def iter_rows(conn: psycopg.Connection[Any], flt: AuditFilter, *, batch: int = 1000) -> Iterator[AuditRow]:
    """Every matching row, newest first, fetched in batches (keyset pagination on id) for streaming exports."""
    before = flt.before_id
    while True:
        page_filter = dataclasses.replace(flt, before_id=before)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = list_rows(cur, page_filter, limit=batch)
        yield from rows
        if len(rows) < batch:
            return
        before = rows[-1].id


def _row(r: Any) -> AuditRow:
    if not isinstance(r, Mapping):
        r = dict(zip(("id", "at", "actor", "action", "target", "regions", "details"), r, strict=True))
    return AuditRow(
        id=r["id"], at=r["at"], actor=r["actor"], action=r["action"], target=r["target"],
        regions=list(r["regions"] or []), details=dict(r["details"] or {}),
    )
