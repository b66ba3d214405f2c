"""The policy lifecycle behind /api/v1/policy: status, drafts, activation, history, what-if.

The running service puts its :class:`ingest.policy_runtime.PolicyRuntime` in ``runtime.extras["policy_runtime"]``;
an API process without one answers 503. Policy errors become HTTP answers here (as :class:`ApiError`s):
404 unknown draft, 409 when OPA bundles manage the policy, 413 draft too large, 415 unknown body type,
422 unusable draft or refused activation (with the load error, the broken platform invariants or the failing
Rego tests).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import psycopg

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.errors import ApiError, ConflictError, NotFoundError, PayloadTooLargeError
from ingest.api.models import (
    ActivationPage,
    ActivationPublic,
    DraftCheckPublic,
    DraftPublic,
    PolicyStatusPublic,
    WhatIfPublic,
    WhatIfRequest,
)
from ingest.errors import StoreUnavailableError
from ingest.policy_runtime import ActivationRefused, DraftNotFoundError, ManagedByOpaError, PolicyRuntime
from ingest.runtime import Runtime
from ingest.store import recorded_decisions
from policy import EmbeddedPolicyEngine, whatif
from policy.bundle import files_from_archive, files_from_mapping
from policy.errors import PolicyDraftError, PolicyError

ARCHIVE_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-compressed-tar",
    "application/octet-stream",
}
WHATIF_STATEMENT_TIMEOUT_MS = 300_000


class PolicyRuntimeMissingError(ApiError):
    status_code = 503


class UnsupportedDraftTypeError(ApiError):
    status_code = 415


class PolicyRefusedError(ApiError):
    status_code = 422


def policy_runtime(runtime: Runtime) -> PolicyRuntime:
    found = runtime.extras.get("policy_runtime")
    if not isinstance(found, PolicyRuntime):
        raise PolicyRuntimeMissingError("this process runs no policy runtime (API only): ask an ingest replica")
    return found


def status(*, runtime: Runtime) -> PolicyStatusPublic:
    found = policy_runtime(runtime).status()
    refused = found.pop("last_refused")
    return PolicyStatusPublic.model_validate(
        {**found, "last_refused": ActivationPublic.model_validate(asdict(refused)) if refused else None}
    )


def list_activations(
    *, runtime: Runtime, settings: ApiSettings, limit: int, offset: int, outcome: str | None, source: str | None
) -> ActivationPage:
    wanted = {k: v for k, v in (("outcome", outcome), ("source", source)) if v is not None}
    where = " AND ".join(f"{column} = %({column})s" for column in wanted)
    query = (
        "SELECT id, at, revision, previous_revision, draft_id, activated_by, source, outcome, error, replica, engine,"
        " tests_passed, tests_failed FROM policy_activations"
        + (f" WHERE {where}" if where else "")
        + " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s"
    )
    with db.query(runtime.control, store="control", settings=settings) as cur:
        rows = cur.execute(query, {**wanted, "limit": limit, "offset": offset}).fetchall()
    return ActivationPage(limit=limit, offset=offset, items=[ActivationPublic.model_validate(r) for r in rows])


def list_drafts(*, runtime: Runtime, settings: ApiSettings, limit: int, offset: int) -> list[DraftPublic]:
    with db.query(runtime.control, store="control", settings=settings) as cur:
        rows = cur.execute(
            "SELECT draft_id, revision, uploaded_by, uploaded_at, bytes, tests, loads, tests_passed, tests_failed,"
            " invariants_failed, check_error AS error FROM policy_drafts"
            " ORDER BY uploaded_at DESC, revision LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()
    return [DraftPublic.model_validate(r) for r in rows]


def upload_draft(*, runtime: Runtime, body: bytes, content_type: str, uploaded_by: str) -> DraftCheckPublic:
    """Store a draft from a .tar.gz (``python -m policy bundle --with-tests``, or a policy directory) or JSON."""
    limit = runtime.settings.policy_draft_max_bytes
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the draft is {len(body)} bytes; the limit is {limit} (INGEST_POLICY_DRAFT_MAX_BYTES)"
        )
    kind = content_type.split(";", 1)[0].strip().lower()
    target = policy_runtime(runtime)
    try:
        if kind == "application/json":
            try:
                mapping = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise PolicyDraftError(f"body is not JSON: {exc}") from exc
            files = files_from_mapping(mapping, max_bytes=limit)
        elif kind in ARCHIVE_TYPES:
            files = files_from_archive(body, max_bytes=limit)
        else:
            raise UnsupportedDraftTypeError(
                f"Content-Type {kind or '(none)'} not supported: send application/gzip (a .tar.gz from "
                "`python -m policy bundle --with-tests`) or application/json ({path: content})"
            )
        return DraftCheckPublic.model_validate(target.upload_draft(files, uploaded_by))
    except ManagedByOpaError as exc:
        raise ConflictError(str(exc)) from None
    except PolicyDraftError as exc:
        raise PolicyRefusedError(f"unusable draft: {exc}") from None


def activate(
    *, runtime: Runtime, revision: str | None, activated_by: str, draft_id: str | None = None, file: bool = False
) -> ActivationPublic:
    target = policy_runtime(runtime)
    try:
        if file:
            result = target.activate_file(activated_by, audit=True)
        else:
            result = target.activate(revision, activated_by, draft_id=draft_id, audit=True)
    except ManagedByOpaError as exc:
        raise ConflictError(str(exc)) from None
    except DraftNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    except ActivationRefused as exc:
        raise PolicyRefusedError(str(exc)) from None
    return ActivationPublic.model_validate({**asdict(result), "replica": target.replica, "engine": target.kind})


def run_whatif(*, runtime: Runtime, request: WhatIfRequest) -> WhatIfPublic:
    target = policy_runtime(runtime)
    engine: Any
    state = target.active.state
    if request.revision == state.revision and isinstance(state.inner, EmbeddedPolicyEngine):
        engine = state.inner
    else:
        try:
            engine = target.draft_engine(request.revision)
        except DraftNotFoundError as exc:
            raise NotFoundError(str(exc)) from None
        except PolicyError as exc:
            raise PolicyRefusedError(f"draft {request.revision} does not load: {exc}") from None
    try:
        since, until = whatif.resolve_window(
            whatif.as_utc(request.since), whatif.as_utc(request.until), timedelta(seconds=request.window_s)
        )
    except ValueError as exc:
        raise PolicyRefusedError(str(exc)) from None
    try:
        patterns = recorded_decisions.read_patterns(
            runtime.settings.control_dsn,
            since=since,
            until=until,
            limit=request.limit,
            statement_timeout_ms=WHATIF_STATEMENT_TIMEOUT_MS,
        )
    except psycopg.Error as exc:
        text = str(exc).strip()
        raise StoreUnavailableError("control", text.splitlines()[0] if text else type(exc).__name__) from None
    report = whatif.replay(patterns, engine, since=since, until=until, examples_per_change=request.examples)
    return WhatIfPublic.model_validate(report.to_json())
