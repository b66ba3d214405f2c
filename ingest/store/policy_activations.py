"""The policy runtime's control-store tables, with their audit rows: SQL only.

``policy_activations`` (migration 0002): one row per activation attempt (revision, previous revision, who,
when, source, accepted or refused, the error). ``policy_drafts``: uploaded drafts (their files, so that
every replica can load them) with the result of their check at upload (migration 0010). Draft uploads and
API activations are also written to the audit trail (:mod:`ingest.store.audit`) in the same transaction
as their own row.

Every function connects to the control store itself (``dsn``); a driver error is raised as
:class:`StoreUnavailableError` (``store control: <first line>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.errors import StoreUnavailableError
from ingest.store import audit

Source = Literal["startup", "file", "api", "opa"]
"""Where an activation came from (column ``source``)."""


@dataclass(frozen=True)
class Activation:
    """One attempt to activate a revision: a row of ``policy_activations`` (without the replica and engine,
    which the runtime that writes it adds)."""

    revision: str
    previous_revision: str | None
    activated_by: str
    source: Source
    outcome: Literal["accepted", "refused"]
    error: str | None
    tests_passed: int | None = None
    tests_failed: int | None = None
    draft_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audited: bool = False  # write an audit row with the activation row (an API request, not a follower)


def record_activations(dsn: str, activations: Sequence[Activation], *, replica: str, engine: str) -> None:
    """Insert ``activations`` (and the audit rows of the ``audited`` ones) in one transaction."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO policy_activations (at, revision, previous_revision, draft_id, activated_by,"
                " source, outcome, error, replica, engine, tests_passed, tests_failed)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        a.at,
                        a.revision,
                        a.previous_revision,
                        a.draft_id,
                        a.activated_by,
                        a.source,
                        a.outcome,
                        a.error,
                        replica,
                        engine,
                        a.tests_passed,
                        a.tests_failed,
                    )
                    for a in activations
                ],
            )
            for a in activations:
                if a.audited:  # same transaction as its policy_activations row
                    audit.record(
                        conn,
                        actor=a.activated_by,
                        action="policy.activate" if a.outcome == "accepted" else "policy.activate_refused",
                        target=f"policy:{a.revision}",
                        details={
                            "previous_revision": a.previous_revision,
                            "draft_id": a.draft_id,
                            "error": a.error,
                            "replica": replica,
                            "at": a.at.isoformat(),
                        },
                    )
    except psycopg.Error as exc:
        raise StoreUnavailableError("control", _first_line(exc)) from None


def latest_accepted(dsn: str, *, or_file: bool = False) -> dict[str, Any] | None:
    """The newest accepted ``api`` activation (``or_file``: ``api`` or ``file``): id, revision, draft_id,
    activated_by, source."""
    sources = "('api', 'file')" if or_file else "('api')"
    return _query_one(
        dsn,
        f"SELECT id, revision, draft_id, activated_by, source FROM policy_activations"
        f" WHERE outcome = 'accepted' AND source IN {sources} ORDER BY id DESC LIMIT 1",
    )


def latest_api_id(dsn: str) -> int | None:
    """The id of the newest accepted ``api`` activation (None: there is none)."""
    row = _query_one(dsn, "SELECT max(id) AS id FROM policy_activations WHERE outcome = 'accepted' AND source = 'api'")
    return (row or {}).get("id")


def save_draft(
    dsn: str,
    *,
    draft_id: str,
    revision: str,
    uploaded_by: str,
    files: Mapping[str, str],
    size: int,
    tests: int,
    loads: bool,
    tests_passed: int,
    tests_failed: int,
    check_error: str | None,
    invariants_failed: Sequence[str],
) -> None:
    """Store a draft (its files as text) with the result of its check, and its audit row, together. A draft
    uploaded again (same ``draft_id``) gets the new uploader, time and check."""
    try:
        with _connect(dsn) as conn, conn.transaction():  # the draft and its audit row together
            conn.execute(
                "INSERT INTO policy_drafts (draft_id, revision, uploaded_by, files, bytes, tests, loads,"
                " tests_passed, tests_failed, check_error, invariants_failed, checked_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (draft_id) DO UPDATE"
                " SET uploaded_by = EXCLUDED.uploaded_by, uploaded_at = now(), loads = EXCLUDED.loads,"
                " tests_passed = EXCLUDED.tests_passed, tests_failed = EXCLUDED.tests_failed,"
                " check_error = EXCLUDED.check_error, invariants_failed = EXCLUDED.invariants_failed,"
                " checked_at = now()",
                (
                    draft_id,
                    revision,
                    uploaded_by,
                    Jsonb(dict(files)),
                    size,
                    tests,
                    loads,
                    tests_passed,
                    tests_failed,
                    check_error,
                    list(invariants_failed),
                ),
            )
            audit.record(
                conn,
                actor=uploaded_by,
                action="policy.draft_upload",
                target=f"policy:{revision}",
                details={
                    "draft_id": draft_id,
                    "files": len(files),
                    "bytes": size,
                    "loads": loads,
                    "tests_failed": tests_failed,
                    "invariants_failed": list(invariants_failed),
                },
            )
    except psycopg.Error as exc:
        raise StoreUnavailableError("control", _first_line(exc)) from None


def find_draft(
    dsn: str, revision: str | None, *, draft_id: str | None = None
) -> tuple[str, str, dict[str, str]] | None:
    """(draft id, revision, files as text) of ``draft_id``; without it, of the best draft of ``revision``: the
    newest whose upload check passed, before untested or failing ones. None: no such draft."""
    if draft_id:
        row = _query_one(dsn, "SELECT draft_id, revision, files FROM policy_drafts WHERE draft_id = %s", (draft_id,))
    else:
        row = _query_one(
            dsn,
            "SELECT draft_id, revision, files FROM policy_drafts WHERE revision = %s"
            " ORDER BY (loads IS TRUE AND check_error IS NULL) DESC, (tests > 0) DESC, uploaded_at DESC, draft_id"
            " LIMIT 1",
            (revision,),
        )
    if row is None:
        return None
    return row["draft_id"], row["revision"], row["files"]


def _connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    try:
        return psycopg.connect(dsn, connect_timeout=5, autocommit=True, row_factory=dict_row)
    except psycopg.Error as exc:
        raise StoreUnavailableError("control", _first_line(exc)) from None


def _query_one(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    try:
        with _connect(dsn) as conn:
            return conn.execute(sql, params).fetchone()
    except psycopg.Error as exc:
        raise StoreUnavailableError("control", _first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "Activation",
    "Source",
    "find_draft",
    "latest_accepted",
    "latest_api_id",
    "record_activations",
    "save_draft",
]
