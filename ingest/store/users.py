"""Users and API tokens in the control store (tables ``users``, ``api_tokens``, migration 0004).

Every change writes an audit row (:func:`ingest.store.audit.record`) in the same transaction: callers
pass a connection and wrap the call in ``conn.transaction()``. Only the SHA-256 digest of a token's
secret is stored (:mod:`ingest.auth.tokens`); the token text exists only in the answer that creates it.
Region names are checked against the registry by the callers (API, CLI); here NULL means every region.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingest.auth import tokens
from ingest.auth.errors import AuthError
from ingest.auth.roles import Role
from ingest.store import audit

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (no write per request)."""


class UserExistsError(AuthError):
    """A user with that name exists already."""


class UnknownUserError(AuthError):
    """No user with that name."""


class UnknownTokenError(AuthError):
    """No token with that id."""


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[Role]
    regions: frozenset[str] | None  # None: every region
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """A token's metadata (never its secret or digest)."""

    token_id: str
    user: str
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class TokenRecord:
    """What authentication needs: the stored digest, its state and its user's roles and scope."""

    token_id: str
    digest: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user: User


_USER_COLS = "name, roles, regions, disabled, created_at, created_by, updated_at"
_TOKEN_COLS = "token_id, user_name, label, created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at"


def _user(row: dict[str, Any], prefix: str = "") -> User:
    regions = row[f"{prefix}regions"]
    return User(
        name=row[f"{prefix}name"],
        roles=frozenset(Role(r) for r in row[f"{prefix}roles"]),
        regions=None if regions is None else frozenset(regions),
        disabled=row[f"{prefix}disabled"],
        created_at=row[f"{prefix}created_at"],
        created_by=row[f"{prefix}created_by"],
        updated_at=row[f"{prefix}updated_at"],
    )


def _token(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(
        token_id=row["token_id"],
        user=row["user_name"],
        label=row["label"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        last_used_at=row["last_used_at"],
    )


def _regions_value(regions: Iterable[str] | None) -> list[str] | None:
    return None if regions is None else sorted(set(regions))


def _scope(regions: Iterable[str] | None) -> str:
    return "*" if regions is None else ",".join(sorted(set(regions)))


def any_user(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()
    return bool(row and row[0])


def get_user(conn: psycopg.Connection[Any], name: str) -> User:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_USER_COLS} FROM users WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None:
        raise UnknownUserError(f"unknown user {name!r}")
    return _user(row)


def list_users(conn: psycopg.Connection[Any]) -> list[User]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_USER_COLS} FROM users ORDER BY name")
        return [_user(r) for r in cur.fetchall()]


def create_user(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    roles: Iterable[Role],
    regions: Iterable[str] | None,
    actor: str,
) -> User:
    """Insert a user (UserExistsError if the name is taken) and audit ``user.create``."""
    role_list = sorted(Role(r).value for r in roles)
    region_list = _regions_value(regions)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"INSERT INTO users (name, roles, regions, created_by) VALUES (%s, %s, %s, %s)"
            f" ON CONFLICT (name) DO NOTHING RETURNING {_USER_COLS}",
            (name, role_list, region_list, actor),
        )
        row = cur.fetchone()
    if row is None:
        raise UserExistsError(f"user {name!r} exists already")
    audit.record(
        conn,
        actor=actor,
        action="user.create",
        target=f"user:{name}",
        regions=region_list or (),
        details={"roles": role_list, "regions": _scope(region_list)},
    )
    return _user(row)


_UNSET: Any = object()


def update_user(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    actor: str,
    roles: Iterable[Role] | None = None,
    regions: Iterable[str] | None = _UNSET,
    disabled: bool | None = None,
) -> User:
    """Change roles, regions (None = every region; leave out to keep) or disabled; audit ``user.update``
    (``user.disable`` / ``user.enable`` when only that flag changes). Disabling revokes the user's tokens
    (one ``token.revoke`` audit row each, reason "user disabled")."""
    before = get_user(conn, name)
    sets: list[str] = []
    params: list[object] = []
    changes: dict[str, object] = {}
    if roles is not None:
        role_list = sorted(Role(r).value for r in roles)
        sets.append("roles = %s")
        params.append(role_list)
        changes["roles"] = {"from": sorted(r.value for r in before.roles), "to": role_list}
    if regions is not _UNSET:
        region_list = _regions_value(regions)
        sets.append("regions = %s")
        params.append(region_list)
        changes["regions"] = {"from": _scope(before.regions), "to": _scope(region_list)}
    if disabled is not None:
        sets.append("disabled = %s")
        params.append(disabled)
        changes["disabled"] = {"from": before.disabled, "to": disabled}
    if not sets:
        return before
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"UPDATE users SET {', '.join(sets)}, updated_at = now() WHERE name = %s RETURNING {_USER_COLS}",
            [*params, name],
        )
        row = cur.fetchone()
    if row is None:
        raise UnknownUserError(f"unknown user {name!r}")
    after = _user(row)
    action = "user.update"
    if set(changes) == {"disabled"}:
        action = "user.disable" if disabled else "user.enable"
    touched = set(before.regions or ()) | set(after.regions or ())
    audit.record(conn, actor=actor, action=action, target=f"user:{name}", regions=touched, details=changes)
    if disabled and not before.disabled:  # a disabled user's tokens end with it (enabling does not revive them)
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE api_tokens SET revoked_at = now(), revoked_by = %s"
                " WHERE user_name = %s AND revoked_at IS NULL RETURNING token_id",
                (actor, name),
            )
            revoked = [row[0] for row in cur.fetchall()]
        for token_id in sorted(revoked):
            audit.record(
                conn,
                actor=actor,
                action="token.revoke",
                target=f"token:{token_id}",
                regions=touched,
                details={"user": name, "reason": "user disabled"},
            )
    return after


def create_token(
    conn: psycopg.Connection[Any],
    *,
    user: str,
    actor: str,
    label: str = "",
    expires_at: datetime | None = None,
    issued: tokens.IssuedToken | None = None,
) -> tuple[TokenInfo, tokens.IssuedToken]:
    """Issue a token for ``user`` (a fresh one unless ``issued`` is given) and audit ``token.create``.

    Returns the metadata and the issued token, whose ``text`` must be shown to the caller once."""
    owner = get_user(conn, user)
    issued = issued or tokens.generate()
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"INSERT INTO api_tokens (token_id, user_name, digest, label, created_by, expires_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_TOKEN_COLS}",
            (issued.token_id, user, issued.digest, label, actor, expires_at),
        )
        row = cur.fetchone()
    assert row is not None
    audit.record(
        conn,
        actor=actor,
        action="token.create",
        target=f"token:{issued.token_id}",
        regions=owner.regions or (),
        details={"user": user, "label": label, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return _token(row), issued


def list_tokens(
    conn: psycopg.Connection[Any], *, user: str | None = None, active_only: bool = False
) -> list[TokenInfo]:
    """Tokens, newest first; ``active_only``: neither revoked nor expired."""
    conditions, params = (["user_name = %s"], [user]) if user is not None else ([], [])
    if active_only:
        conditions.append("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens {where} ORDER BY created_at DESC, token_id", params)
        return [_token(r) for r in cur.fetchall()]


def revoke_token(conn: psycopg.Connection[Any], token_id: str, *, actor: str) -> TokenInfo:
    """Revoke a token (idempotent: a revoked token keeps its first revocation) and audit ``token.revoke``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()), revoked_by = COALESCE(revoked_by, %s)"
            f" WHERE token_id = %s RETURNING {_TOKEN_COLS}",
            (actor, token_id),
        )
        row = cur.fetchone()
    if row is None:
        raise UnknownTokenError(f"unknown token {token_id!r}")
    info = _token(row)
    audit.record(conn, actor=actor, action="token.revoke", target=f"token:{token_id}", details={"user": info.user})
    return info


def lookup_token(conn: psycopg.Connection[Any], token_id: str) -> TokenRecord | None:
    """The token and its user, for authentication; None when no such token."""
    cols = ", ".join(f"u.{c} AS u_{c}" for c in _USER_COLS.split(", "))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT t.token_id, t.digest, t.expires_at, t.revoked_at, t.last_used_at, {cols}"
            " FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_id = %s",
            (token_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return TokenRecord(
        token_id=row["token_id"],
        digest=row["digest"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        user=_user(row, prefix="u_"),
    )


def touch_token(conn: psycopg.Connection[Any], token_id: str) -> None:
    """Set ``last_used_at`` to now unless it was set within :data:`LAST_USED_RESOLUTION`."""
    conn.execute(
        "UPDATE api_tokens SET last_used_at = now() WHERE token_id = %s"
        " AND (last_used_at IS NULL OR last_used_at < now() - %s)",
        (token_id, LAST_USED_RESOLUTION),
    )


def bootstrap_admin(
    conn: psycopg.Connection[Any], *, name: str, issued: tokens.IssuedToken, actor: str = "bootstrap"
) -> bool:
    """If no user exists, create ``name`` with every role and every region, holding ``issued``.

    Returns whether it did. Serialised by an advisory lock, so concurrent replicas create it once."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x7E1E_0A07,))
    if any_user(conn):
        return False
    create_user(conn, name=name, roles=list(Role), regions=None, actor=actor)
    create_token(conn, user=name, actor=actor, label="bootstrap", issued=issued)
    return True
