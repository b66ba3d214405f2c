"""Users and API tokens (role admin): create, list, update, disable users; create, list, revoke tokens.

A token's text is in the answer that creates it and nowhere else (only its SHA-256 digest is stored).
An admin scoped to some regions manages only users whose scope lies within its own, and cannot grant
regions outside it (nor every region). Every change is written to the audit trail in the same
transaction (:mod:`ingest.store.users`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Path, Query
from psycopg_pool import PoolClosed, PoolTimeout
from pydantic import BaseModel, Field, StrictBool

from ingest.api import closed_sets
from ingest.api.auth import AUTH_RESPONSES, PrincipalDep, require, require_scope
from ingest.api.closed_sets import InvalidChoiceError, closed_set
from ingest.api.config import ApiSettings
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.api.errors import ConflictError, NotFoundError
from ingest.api.models import ErrorPublic
from ingest.auth.roles import ALL_REGIONS, Principal, Role
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime
from ingest.store import users

router = APIRouter(
    tags=["users"],
    responses={**AUTH_RESPONSES, 503: {"model": ErrorPublic, "description": "The control store is unreachable."}},
)
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
UserName = Annotated[str, Path(pattern=NAME_PATTERN, description="User name.")]


class UserCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description="Login name: letters, digits, . _ @ -; at most 64.")
    roles: list[Role] = Field(min_length=1, description="operator, compliance, engineer, admin")
    regions: list[str] | Literal["*"] = Field(
        description='Region names of the registry, or "*" for every region.', json_schema_extra=closed_set("regions")
    )


class UserUpdate(BaseModel):
    roles: list[Role] | None = Field(default=None, min_length=1)
    regions: list[str] | Literal["*"] | None = Field(default=None, json_schema_extra=closed_set("regions"))
    disabled: StrictBool | None = None


class UserPublic(BaseModel):
    name: str
    roles: list[Role]
    regions: list[str] | Literal["*"]
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime


class TokenCreate(BaseModel):
    label: str = Field(default="", max_length=200, description="What the token is for.")
    expires_in_days: float | None = Field(default=None, gt=0, le=3650, description="Omit: never expires.")


@dataclass(frozen=True)
class TokenCreated(users.TokenInfo):
    """A new token's metadata (the store's :class:`~ingest.store.users.TokenInfo`) and its text."""

    token: Annotated[str, Field(description="The token, shown only in this answer: `Authorization: Bearer <token>`.")]


def _user_public(user: users.User) -> UserPublic:
    return UserPublic(
        name=user.name,
        roles=sorted(user.roles),
        regions=ALL_REGIONS if user.regions is None else sorted(user.regions),
        disabled=user.disabled,
        created_at=user.created_at,
        created_by=user.created_by,
        updated_at=user.updated_at,
    )


def _regions(runtime: Runtime, value: list[str] | Literal["*"]) -> frozenset[str] | None:
    if value == ALL_REGIONS:
        return None
    names = frozenset(value)
    unknown = sorted(names - set(runtime.registry.regions))
    if unknown:
        accepted = closed_sets.values("regions+*", runtime.registry)
        raise InvalidChoiceError(
            "regions",
            f"unknown region(s) {', '.join(map(repr, unknown))} (known: "
            f'{", ".join(sorted(runtime.registry.regions))}, or "*" alone)',
            accepted,
            location="body",
        )
    return names


def _manage(principal: Principal, regions: frozenset[str] | None, what: str) -> None:
    """A scoped admin acts only on users (and grants only scopes) within its own scope."""
    require_scope(principal, regions, what)


@contextmanager
def _write(runtime: Runtime, settings: ApiSettings) -> Iterator[psycopg.Connection[Any]]:
    """A control-store connection in a transaction; store errors become 404 / 409 / 503."""
    try:
        with runtime.control.connection(timeout=settings.pool_timeout_s) as conn, conn.transaction():
            yield conn
    except (users.UnknownUserError, users.UnknownTokenError) as exc:
        raise NotFoundError(str(exc)) from None
    except users.UserExistsError as exc:
        raise ConflictError(str(exc)) from None
    except (PoolTimeout, PoolClosed) as exc:
        raise StoreUnavailableError("control", str(exc) or "no connection") from None
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError("control", str(exc).strip().splitlines()[0]) from None


@router.post(
    "/users",
    status_code=201,
    summary="Create a user (role admin)",
    responses={409: {"model": ErrorPublic, "description": "Name taken."}},
)
def create_user(body: UserCreate, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep) -> UserPublic:
    regions = _regions(runtime, body.regions)
    _manage(principal, regions, f"creating user {body.name!r}")
    with _write(runtime, settings) as conn:
        user = users.create_user(conn, name=body.name, roles=body.roles, regions=regions, actor=principal.user)
    return _user_public(user)


@router.get("/users", summary="Users, by name (role admin; a scoped admin sees the users within its scope)")
def list_users(runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep) -> list[UserPublic]:
    with _write(runtime, settings) as conn:
        found = users.list_users(conn)
    visible = [
        u for u in found if principal.regions is None or (u.regions is not None and u.regions <= principal.regions)
    ]
    return [_user_public(u) for u in visible]


def _get_managed(conn: psycopg.Connection[Any], principal: Principal, name: str, doing: str) -> users.User:
    user = users.get_user(conn, name)
    _manage(principal, user.regions, f"{doing} user {name!r}")
    return user


@router.get("/users/{name}", summary="One user (role admin)", responses={404: {"model": ErrorPublic}})
def get_user(name: UserName, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep) -> UserPublic:
    with _write(runtime, settings) as conn:
        return _user_public(_get_managed(conn, principal, name, "reading"))


@router.patch(
    "/users/{name}",
    summary="Change a user's roles, regions or disabled flag (role admin)",
    responses={404: {"model": ErrorPublic}},
)
def update_user(
    name: UserName, body: UserUpdate, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep
) -> UserPublic:
    changes: dict[str, Any] = {}
    if body.roles is not None:
        changes["roles"] = body.roles
    if body.regions is not None:
        changes["regions"] = _regions(runtime, body.regions)
        _manage(principal, changes["regions"], f"granting regions to user {name!r}")
    if body.disabled is not None:
        changes["disabled"] = body.disabled
    with _write(runtime, settings) as conn:
        _get_managed(conn, principal, name, "changing")
        return _user_public(users.update_user(conn, name, actor=principal.user, **changes))


@router.delete(
    "/users/{name}",
    summary="Disable a user: its tokens are revoked; the user stays for the audit trail",
    responses={404: {"model": ErrorPublic}},
)
def disable_user(name: UserName, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep) -> UserPublic:
    with _write(runtime, settings) as conn:
        _get_managed(conn, principal, name, "disabling")
        return _user_public(users.update_user(conn, name, actor=principal.user, disabled=True))


@router.post(
    "/users/{name}/tokens",
    status_code=201,
    summary="Create an API token (shown once) (role admin)",
    responses={404: {"model": ErrorPublic}},
)
def create_token(
    name: UserName, body: TokenCreate, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep
) -> TokenCreated:
    expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with _write(runtime, settings) as conn:
        _get_managed(conn, principal, name, "creating a token for")
        info, issued = users.create_token(
            conn, user=name, actor=principal.user, label=body.label, expires_at=expires_at
        )
    return TokenCreated(**asdict(info), token=issued.text)


@router.get(
    "/users/{name}/tokens",
    summary="A user's usable tokens, without secrets (role admin)",
    responses={404: {"model": ErrorPublic}},
)
def list_user_tokens(
    name: UserName,
    runtime: RuntimeDep,
    settings: ApiSettingsDep,
    principal: AdminDep,
    include_inactive: Annotated[
        bool, Query(description="Also revoked and expired tokens (a disabled user's tokens are revoked).")
    ] = False,
) -> list[users.TokenInfo]:
    with _write(runtime, settings) as conn:
        _get_managed(conn, principal, name, "listing the tokens of")
        return users.list_tokens(conn, user=name, active_only=not include_inactive)


@router.delete(
    "/tokens/{token_id}", summary="Revoke a token (role admin); idempotent", responses={404: {"model": ErrorPublic}}
)
def revoke_token(token_id: str, runtime: RuntimeDep, settings: ApiSettingsDep, principal: AdminDep) -> users.TokenInfo:
    with _write(runtime, settings) as conn:
        owner = next((t.user for t in users.list_tokens(conn) if t.token_id == token_id), None)
        if owner is None:
            raise users.UnknownTokenError(f"unknown token {token_id!r}")
        _get_managed(conn, principal, owner, "revoking a token of")
        return users.revoke_token(conn, token_id, actor=principal.user)


class MePublic(BaseModel):
    user: str
    roles: list[Role]
    regions: list[str] | Literal["*"]
    token_id: str | None


@router.get("/me", summary="The authenticated user: name, roles, region scope (any role)")
def me(principal: PrincipalDep) -> MePublic:
    return MePublic(
        user=principal.user,
        roles=sorted(principal.roles),
        regions=ALL_REGIONS if principal.regions is None else sorted(principal.regions),
        token_id=principal.token_id,
    )
