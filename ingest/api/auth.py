"""Authentication and authorisation of API requests: ``Authorization: Bearer rtk_<token_id>_<secret>``.

- :func:`authenticate` (a FastAPI dependency) checks the token against the control store: unknown id,
  wrong secret, disabled user, expiry and revocation all answer 401 with ``WWW-Authenticate: Bearer``;
  it also applies the rate limit (per token; per client address for requests without a valid token).
  FastAPI caches it per request, so a route that needs several dependencies checks the token once.
- :func:`require` (``Depends(require(Role.COMPLIANCE))``) adds the role check: 403 naming the roles
  needed and those the user has.
- Region scope is enforced where the data is: :mod:`ingest.api.caller` for personal data,
  :func:`require_scope` for actions on region-bound items.

Usage in routes::

    principal: Annotated[Principal, Depends(require(Role.OPERATOR))]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolClosed, PoolTimeout

from ingest.api.config import ApiSettings
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.errors import ForbiddenError, UnauthorizedError
from ingest.api.models import ErrorPublic
from ingest.api.ratelimit import RateLimiter
from ingest.auth import tokens
from ingest.auth.errors import MalformedTokenError
from ingest.auth.roles import Principal, Role
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime
from ingest.store import users

__all__ = ["AUTH_RESPONSES", "PrincipalDep", "authenticate", "guard", "require", "require_scope"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token `rtk_<token_id>_<secret>` (`ingest tokens create USER`, or "
    "POST /api/v1/users/{name}/tokens).",
)


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate(
    request: Request,
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of a valid bearer token; 401 otherwise (after counting against the address's limit)."""
    limiter = _limiter(request)
    try:
        principal = _verify(runtime, settings, credentials)
    except UnauthorizedError:
        limiter.hit_address(_client_address(request))
        raise
    limiter.hit_token(principal.token_id or principal.user)
    request.state.principal = principal
    return principal


def _verify(runtime: Runtime, settings: ApiSettings, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise UnauthorizedError("authentication required: send 'Authorization: Bearer <API token>'", error="")
    try:
        presented = tokens.parse(credentials.credentials)
    except MalformedTokenError as exc:
        raise UnauthorizedError(f"invalid token: {exc}") from None
    record = _lookup(runtime, settings, presented.token_id)
    # unknown id and wrong secret get the same answer (no oracle for valid ids)
    if record is None or not tokens.verify(presented.secret, record.digest):
        raise UnauthorizedError("invalid token: unknown token or wrong secret")
    if record.user.disabled:  # first: disabling also revokes the user's tokens, and this says why
        raise UnauthorizedError(f"user {record.user.name!r} is disabled")
    if record.revoked_at is not None:
        raise UnauthorizedError(f"token {record.token_id} was revoked at {record.revoked_at.isoformat()}")
    now = datetime.now(UTC)
    if record.expires_at is not None and record.expires_at <= now:
        raise UnauthorizedError(f"token {record.token_id} expired at {record.expires_at.isoformat()}")
    if record.last_used_at is None or now - record.last_used_at >= users.LAST_USED_RESOLUTION:
        _touch(runtime, settings, record.token_id)
    return Principal(
        user=record.user.name, roles=record.user.roles, regions=record.user.regions, token_id=record.token_id
    )


def _lookup(runtime: Runtime, settings: ApiSettings, token_id: str) -> users.TokenRecord | None:
    try:
        with runtime.control.connection(timeout=settings.pool_timeout_s) as conn:
            return users.lookup_token(conn, token_id)
    except PoolTimeout:
        raise StoreUnavailableError("control", f"no connection within {settings.pool_timeout_s:g}s") from None
    except PoolClosed:
        raise StoreUnavailableError("control", "connection pool is closed") from None
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError("control", str(exc).strip().splitlines()[0] or "connection failed") from None


def _touch(runtime: Runtime, settings: ApiSettings, token_id: str) -> None:
    try:
        with runtime.control.connection(timeout=settings.pool_timeout_s) as conn:
            users.touch_token(conn, token_id)
    except (PoolTimeout, PoolClosed, psycopg.Error):
        pass  # last_used_at is informational: never fail a request for it


PrincipalDep = Annotated[Principal, Depends(authenticate)]
"""Any authenticated caller, whatever its roles."""


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency returning the principal when it has at least one of ``roles`` (403 otherwise).

    Without roles: any authenticated principal."""
    needed = frozenset(roles)

    def dependency(principal: PrincipalDep) -> Principal:
        if needed and not principal.roles & needed:
            has = ", ".join(sorted(r.value for r in principal.roles)) or "none"
            wants = " or ".join(sorted(r.value for r in needed))
            raise ForbiddenError(f"this endpoint needs the role {wants}; user {principal.user!r} has: {has}")
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(r.value for r in needed)) or 'any'}"
    return dependency


def require_scope(principal: Principal, regions: set[str] | frozenset[str] | None, what: str) -> None:
    """403 unless every region of ``regions`` is in the principal's scope (None: every region needed)."""
    if regions is None:
        if principal.regions is not None:
            raise ForbiddenError(
                f"{what} needs a scope of every region; user {principal.user!r} has: {principal.scope_text}"
            )
        return
    outside = sorted(r for r in regions if not principal.in_scope(r))
    if outside:
        raise ForbiddenError(
            f"{what} concerns region(s) {', '.join(outside)}, outside the scope of user "
            f"{principal.user!r} ({principal.scope_text})"
        )


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No token, or a malformed, unknown, expired or revoked one."},
    403: {"model": ErrorPublic, "description": "The user lacks the role, or the region is outside its scope."},
    429: {"model": ErrorPublic, "description": "Over the rate limit (Retry-After)."},
}
"""OpenAPI documentation of 401 / 403 / 429 for a protected router."""


def guard(*roles: Role) -> list[Any]:
    """``dependencies=guard(Role.ENGINEER)`` for a router or route that needs no principal object."""
    return [Depends(require(*roles))]
