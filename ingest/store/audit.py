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

_INSERT = "INSERT INTO audit_log (actor, action, target, regions, details) VALUES (%s, %s, %s, %s, %s)"


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


# AuditFilter field -> SQL condition on its value
_CONDITIONS = {
    "actor": "actor = %s",
    "action": "action = %s",
    "target": "target = %s",
    "region": "%s = ANY(regions)",
    "since": "at >= %s",
    "until": "at < %s",
    "before_id": "id < %s",
    "scope": "(regions = '{}' OR regions && %s::text[])",
}


def _where(flt: AuditFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for name, condition in _CONDITIONS.items():
        value = getattr(flt, name)
        if value is not None:
            clauses.append(condition)
            params.append(sorted(value) if isinstance(value, frozenset) else value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_rows(cur: psycopg.Cursor[Any], flt: AuditFilter, *, limit: int) -> list[AuditRow]:
    """Newest first, at most ``limit`` rows."""
    where, params = _where(flt)
    cur.execute(
        f"SELECT id, at, actor, action, target, regions, details FROM audit_log{where} ORDER BY id DESC LIMIT %s",
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
        id=r["id"],
        at=r["at"],
        actor=r["actor"],
        action=r["action"],
        target=r["target"],
        regions=list(r["regions"] or []),
        details=dict(r["details"] or {}),
    )
