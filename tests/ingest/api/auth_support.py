"""Users and tokens for the API tests, created through the real store functions (ingest.store.users)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime

import psycopg

from ingest.auth import tokens
from ingest.auth.roles import Role
from ingest.store import users

_names = itertools.count(1)


def issue_token(
    control_dsn: str,
    roles: Iterable[Role],
    regions: Iterable[str] | None = None,
    *,
    name: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, str]:
    """A new user with ``roles`` and ``regions`` (None: every region) and a token: (user name, token text)."""
    name = name or f"user{next(_names)}-{'-'.join(sorted(Role(r).value for r in roles))}"
    with psycopg.connect(control_dsn) as conn, conn.transaction():
        users.create_user(conn, name=name, roles=roles, regions=regions, actor="test-setup")
        _, issued = users.create_token(conn, user=name, actor="test-setup", expires_at=expires_at)
    return name, issued.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fixed_token(name: str) -> str:
    """A well-formed token whose text depends only on ``name`` (tests that create a fresh control store per
    test can use a constant header)."""
    token_id = (name.replace("_", "-") + "00000000")[:12]
    return tokens.format_token(token_id, (name + "-secret-" * 8)[:43].replace("_", "-"))


def add_user_with_token(
    control_dsn: str, name: str, roles: Iterable[Role], regions: Iterable[str] | None, token_text: str
) -> None:
    """Create ``name`` holding exactly ``token_text`` (only its digest is stored)."""
    with psycopg.connect(control_dsn) as conn, conn.transaction():
        users.create_user(conn, name=name, roles=roles, regions=regions, actor="test-setup")
        users.create_token(conn, user=name, actor="test-setup", issued=tokens.issued_from_text(token_text))
