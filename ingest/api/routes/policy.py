"""The residency policy of this replica: status, drafts, activation without restart, history, what-if.

Reading the active revision: any authenticated user. Drafts, activation history, what-if and changes: role
compliance. Activation is global (every region's data is routed by the new revision), so it also needs a
scope of every region. The authenticated user is recorded as ``uploaded_by`` / ``activated_by`` and every
change is written to the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ingest.api.auth import AUTH_RESPONSES, guard, require, require_scope
from ingest.api.deps import ApiSettingsDep, Offset, RuntimeDep
from ingest.api.errors import PayloadTooLargeError
from ingest.api.models import (
    ActivateRequest,
    ActivationPage,
    ActivationPublic,
    DraftCheckPublic,
    DraftPublic,
    ErrorPublic,
    PolicyStatusPublic,
    WhatIfPublic,
    WhatIfRequest,
)
from ingest.api.service import policy as service
from ingest.auth.roles import Principal, Role

router = APIRouter(
    prefix="/policy",
    tags=["policy"],
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorPublic, "description": "No policy runtime here, or the control store is down."},
    },
)

ComplianceDep = Annotated[Principal, Depends(require(Role.COMPLIANCE))]


@router.get("", summary="The active policy revision, engine, load time and decision cache", dependencies=guard())
def get_policy(runtime: RuntimeDep) -> PolicyStatusPublic:
    return service.status(runtime=runtime)


@router.get(
    "/activations",
    summary="Activation attempts (accepted and refused), newest first",
    dependencies=guard(Role.COMPLIANCE),
)
def list_activations(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    outcome: Literal["accepted", "refused"] | None = None,
    source: Literal["startup", "file", "api", "opa"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> ActivationPage:
    return service.list_activations(
        runtime=runtime, settings=settings, limit=limit, offset=offset, outcome=outcome, source=source
    )


@router.get(
    "/drafts", summary="Uploaded drafts, newest first (without their files)", dependencies=guard(Role.COMPLIANCE)
)
def list_drafts(
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> list[DraftPublic]:
    return service.list_drafts(runtime=runtime, settings=settings, limit=limit, offset=offset)


@router.post(
    "/drafts",
    status_code=201,
    summary="Upload a draft policy",
    description=(
        "Body: a `.tar.gz` (`Content-Type: application/gzip`) as written by "
        "`python -m policy bundle --with-tests draft.tar.gz --policy-dir DRAFT_DIR`, or a tar.gz of a policy "
        'directory (`rego/`, `data/`), or JSON `{"rego/residency/x.rego": "...", "data/x.json": "..."}`. '
        "The draft is stored under the revision its files hash to, loaded, checked against the platform's "
        "invariants and tested; the answer says whether an activation would be accepted. At most 2000 entries, "
        "4 MiB per file, INGEST_POLICY_DRAFT_MAX_BYTES unpacked, 255-byte paths; only regular files and "
        "directories (links, devices and oversized tar extension headers are refused, naming the entry)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {
                    "schema": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string"},
                        "propertyNames": {"pattern": r"^(rego/.+\.rego|data/.+\.json)$", "maxLength": 255},
                    }
                },
            },
        }
    },
    responses={
        409: {"model": ErrorPublic, "description": "Policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)."},
        413: {"model": ErrorPublic, "description": "Larger than INGEST_POLICY_DRAFT_MAX_BYTES."},
        415: {"model": ErrorPublic, "description": "Neither application/gzip nor application/json."},
        422: {"model": ErrorPublic, "description": "Not a policy directory (bad archive, path or file type)."},
    },
)
async def upload_draft(request: Request, runtime: RuntimeDep, principal: ComplianceDep) -> DraftCheckPublic:
    uploaded_by = principal.user
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > runtime.settings.policy_draft_max_bytes:
        raise PayloadTooLargeError(
            f"the draft is {declared} bytes; the limit is {runtime.settings.policy_draft_max_bytes}"
        )
    body = await request.body()
    return await run_in_threadpool(
        service.upload_draft,
        runtime=runtime,
        body=body,
        content_type=request.headers.get("content-type", ""),
        uploaded_by=uploaded_by,
    )


@router.post(
    "/activate",
    summary="Activate a draft by id (or the best draft of a revision), or the policy directory again",
    description=(
        'Body: `{"draft_id": ...}` (exactly that draft), `{"revision": ...}` (the newest draft of that '
        "revision whose upload check passed, so an untested upload never shadows a tested one; the policy "
        'directory when no draft has that revision but the directory has) or `{"file": true}` (the policy '
        "directory the ingest runs from, INGEST_POLICY_DIR, again, e.g. after an API draft). The candidate "
        "must load, keep every platform invariant (policy/invariants.yaml) and pass its own Rego tests."
    ),
    responses={
        403: {"model": ErrorPublic, "description": "Not compliance, or not scoped to every region."},
        404: {"model": ErrorPublic, "description": "No such draft, or not of that revision."},
        409: {"model": ErrorPublic, "description": "Policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)."},
        422: {
            "model": ErrorPublic,
            "description": "Refused: the candidate does not load, breaks a platform "
            "invariant (named) or its tests fail; or the body names nothing to activate.",
        },
    },
)
def activate(body: ActivateRequest, runtime: RuntimeDep, principal: ComplianceDep) -> ActivationPublic:
    require_scope(principal, None, "activating a policy (it routes every region's data)")
    return service.activate(
        runtime=runtime, revision=body.revision, activated_by=principal.user, draft_id=body.draft_id, file=body.file
    )


@router.post(
    "/whatif",
    summary="Replay recorded decisions of a window against a draft",
    responses={
        404: {"model": ErrorPublic, "description": "No draft with that revision."},
        422: {"model": ErrorPublic, "description": "The draft does not load, or the window is empty."},
    },
    dependencies=guard(Role.COMPLIANCE),
)
def post_whatif(body: WhatIfRequest, runtime: RuntimeDep) -> WhatIfPublic:
    return service.run_whatif(runtime=runtime, request=body)
