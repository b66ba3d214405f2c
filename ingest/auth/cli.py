"""``ingest users ...`` and ``ingest tokens ...``: manage users and API tokens from a shell (the first admin).

Settings come from the INGEST_* environment like the service (the control DSN and the registry, whose
region names a user's scope must use). Changes are audited with the actor ``cli:<login>``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
import typer

from ingest.auth import tokens
from ingest.auth.errors import AuthError
from ingest.auth.roles import ALL_REGIONS, Role, parse_roles
from ingest.config import IngestSettings, load_settings
from ingest.errors import IngestError
from ingest.registry import load_registry
from ingest.store import users
from ingest.store.migrate import migrate

users_app = typer.Typer(add_completion=False, help="Users: roles and region scopes.")
tokens_app = typer.Typer(add_completion=False, help="API tokens (shown once, stored hashed).")

RolesOpt = Annotated[list[str], typer.Option("--role", "-r", help="A role; repeat for several.")]
RegionsOpt = Annotated[str, typer.Option("--regions", help="Comma-separated region names, or '*' for every region.")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"ingest: {message}", err=True)
    return typer.Exit(2)


def _parse_regions(settings: IngestSettings, text: str) -> frozenset[str] | None:
    text = text.strip()
    if text == ALL_REGIONS:
        return None
    names = frozenset(p.strip() for p in text.split(",") if p.strip())
    known = set(load_registry(settings.registry_file).regions)
    unknown = sorted(names - known)
    if unknown:
        raise _fail(f"--regions: unknown region(s) {', '.join(unknown)} (known: {', '.join(sorted(known))}, or '*')")
    return names


@contextmanager
def _control() -> Iterator[tuple[IngestSettings, psycopg.Connection[Any]]]:
    try:
        settings = load_settings()
        migrate(settings.control_dsn, "control", store="control")
        with psycopg.connect(settings.control_dsn, connect_timeout=5) as conn, conn.transaction():
            yield settings, conn
    except AuthError as exc:
        raise _fail(str(exc)) from None
    except IngestError as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"control store: {str(exc).strip().splitlines()[0]}") from None


def _show_user(user: users.User) -> str:
    scope = ALL_REGIONS if user.regions is None else ",".join(sorted(user.regions)) or "(none)"
    state = " disabled" if user.disabled else ""
    return f"{user.name}\troles={','.join(sorted(user.roles))}\tregions={scope}{state}"


def _roles(names: list[str]) -> frozenset[Role]:
    try:
        return parse_roles(names)
    except AuthError as exc:
        raise _fail(f"--role: {exc}") from None


@users_app.command("add")
def add_user(name: str, role: RolesOpt, regions: RegionsOpt) -> None:
    """Create a user, e.g. ``ingest users add alice --role admin --regions '*'``."""
    roles = _roles(role)
    with _control() as (settings, conn):
        user = users.create_user(
            conn, name=name, roles=roles, regions=_parse_regions(settings, regions), actor=_actor()
        )
    typer.echo(_show_user(user))


@users_app.command("list")
def list_users() -> None:
    """Every user with roles and regions."""
    with _control() as (_settings, conn):
        for user in users.list_users(conn):
            typer.echo(_show_user(user))


@users_app.command("update")
def update_user(
    name: str,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="Replace the roles.")] = None,
    regions: Annotated[str | None, typer.Option("--regions", help="Replace the scope ('*' = every region).")] = None,
    disabled: Annotated[bool | None, typer.Option("--disable/--enable", help="Disable or enable.")] = None,
) -> None:
    """Change a user's roles, regions or disabled flag."""
    changes: dict[str, Any] = {}
    if role:
        changes["roles"] = _roles(role)
    if disabled is not None:
        changes["disabled"] = disabled
    with _control() as (settings, conn):
        if regions is not None:
            changes["regions"] = _parse_regions(settings, regions)
        user = users.update_user(conn, name, actor=_actor(), **changes)
    typer.echo(_show_user(user))


@tokens_app.command("create")
def create_token(
    name: str,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires_in_days: Annotated[float | None, typer.Option(min=0.001, help="Omit: never expires.")] = None,
) -> None:
    """Create an API token for user NAME and print it (once: only its hash is stored)."""
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with _control() as (_settings, conn):
        info, issued = users.create_token(conn, user=name, actor=_actor(), label=label, expires_at=expires_at)
    typer.echo(f"token {info.token_id} for {name} (shown once; send it as 'Authorization: Bearer <token>'):", err=True)
    typer.echo(issued.text)


@tokens_app.command("list")
def list_tokens(name: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None) -> None:
    """Tokens (ids and state, never secrets)."""
    with _control() as (_settings, conn):
        for t in users.list_tokens(conn, user=name):
            state = (
                "revoked"
                if t.revoked_at
                else ("expired" if t.expires_at and t.expires_at <= datetime.now(UTC) else "active")
            )
            used = t.last_used_at.isoformat() if t.last_used_at else "never"
            typer.echo(f"{t.token_id}\t{t.user}\t{state}\tlast used {used}\t{t.label}")


@tokens_app.command("revoke")
def revoke_token(token_id: str) -> None:
    """Revoke a token: it stops working at once, on every replica."""
    with _control() as (_settings, conn):
        info = users.revoke_token(conn, token_id, actor=_actor())
    typer.echo(f"revoked {info.token_id} of {info.user}")


@tokens_app.command("generate")
def generate_token() -> None:
    """Print a fresh random token without storing it (for INGEST_BOOTSTRAP_ADMIN_TOKEN / the Docker secret)."""
    typer.echo(tokens.generate().text)
