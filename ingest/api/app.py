"""``create_app(runtime)``: the ingest HTTP API under /api/v1, plus the dashboard at /dashboard."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from ingest.api import problems
from ingest.api.bodylimit import BodySizeLimit
from ingest.api.closed_sets import InvalidChoiceError
from ingest.api.config import ApiSettings, load_api_settings
from ingest.api.errors import ApiError, BadParameterError
from ingest.api.metrics import observe_requests
from ingest.api.models import FieldErrorPublic
from ingest.api.ratelimit import RateLimiter
from ingest.api.routes import (
    aggregates,
    audit,
    dashboard,
    decisions,
    devices,
    docs,
    health,
    links,
    policy,
    quarantine,
    rates,
    registry,
    registry_admin,
    rejections,
    schema,
    sites,
    sparkplug,
    stats,
    store_jobs,
    users,
    volumes,
)
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime

API_PREFIX = "/api/v1"
VERSION = "0.1.0"

log = logging.getLogger("ingest.api")

TAGS = [
    {"name": "health", "description": "Is every store reachable, the pipeline healthy, a policy loaded?"},
    {"name": "devices", "description": "Registry devices, their status and their telemetry per region."},
    {"name": "decisions", "description": "The policy decision log and the origin -> region flow matrix."},
    {"name": "rejections", "description": "Messages that could not be stored, with their reason codes."},
    {"name": "quarantine", "description": "Quarantined messages: review, inspect and release (compliance)."},
    {"name": "registry", "description": "Regions (stores) and sites (factories) of the registry."},
    {"name": "telemetry", "description": "Per-site summaries and cross-region aggregates of machine metrics."},
    {"name": "stats", "description": "Pipeline counters and Prometheus metrics."},
    {"name": "schema", "description": "The wire format devices publish."},
    {"name": "policy", "description": "The residency policy: active revision, drafts, activation, history, what-if."},
    {"name": "users", "description": "Users, their roles and region scopes, and their API tokens (admin)."},
    {"name": "audit", "description": "The append-only audit trail of changes: who, what, when (compliance, admin)."},
]


def create_app(runtime: Runtime, *, settings: ApiSettings | None = None) -> FastAPI:
    """Build the API around a running service's ``runtime`` (pools are opened and closed by the owner)."""
    app = FastAPI(
        title="Residency-aware telemetry: ingest API",
        version=VERSION,
        description=(
            "Telemetry from the region stores, the device registry, the policy decision log (where data "
            "went and why), rejected messages, pipeline counters, and a live dashboard at /dashboard."
        ),
        openapi_tags=TAGS,
        docs_url=None,  # served with local assets by routes.docs (no CDN)
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.runtime = runtime
    app.state.api_settings = api_settings = settings or load_api_settings()
    app.state.rate_limiter = RateLimiter(api_settings)

    routers = (
        health,
        schema,
        devices,
        decisions,
        rejections,
        quarantine,
        stats,
        links,
        store_jobs,
        rates,
        registry,
        sites,
        aggregates,
        policy,
        users,
        audit,
        volumes,
        sparkplug,
    )
    for router in routers:
        app.include_router(router.router, prefix=API_PREFIX)
    app.include_router(registry_admin.router, prefix=API_PREFIX)  # operators change sites and devices
    app.include_router(dashboard.router)
    docs.mount_docs(app, API_PREFIX)
    app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC_DIR), name="dashboard-static")

    draft_limit = runtime.settings.policy_draft_max_bytes

    def body_limit(scope: Scope) -> tuple[int, str]:
        if scope.get("path") == f"{API_PREFIX}/policy/drafts":
            return draft_limit, "a policy draft (INGEST_POLICY_DRAFT_MAX_BYTES)"
        return api_settings.max_body_bytes, "a request (INGEST_API_MAX_BODY_BYTES)"

    # added first = innermost: its receive() is called by the route itself, not through the task group of a
    # BaseHTTPMiddleware (which would wrap the 413 in an ExceptionGroup that FastAPI turns into a 400)
    app.add_middleware(BodySizeLimit, limit_for=body_limit)
    app.middleware("http")(observe_requests)
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)  # type: ignore[arg-type]  # as above
    problems.install(app)  # one error body (ErrorPublic) for validation and Starlette's own errors; Allow on 405
    problems.document(app, runtime.registry)  # ... and in the OpenAPI document, with closed sets as enums
    return app


def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    parameter = exc.parameter if isinstance(exc, BadParameterError) else None
    errors = None
    if isinstance(exc, InvalidChoiceError):
        errors = [
            FieldErrorPublic(
                location=exc.location,
                field=exc.parameter,
                message=exc.detail.removeprefix(f"{exc.parameter}: "),
                accepted=exc.accepted,
            )
        ]
    return problems.error_response(
        exc.status_code, exc.detail, parameter=parameter, errors=errors, headers=exc.headers or None
    )


def _store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
    log.warning("%s %s: store %s unavailable: %s", request.method, request.url.path, exc.store, exc.reason)
    return problems.error_response(
        503, f"store {exc.store!r} unavailable: {exc.reason}", store=exc.store, headers={"Retry-After": "5"}
    )
