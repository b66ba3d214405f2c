"""Users, hashed tokens and the append-only audit trail in a real control store (migration 0004)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.auth import tokens
from ingest.auth.bootstrap import bootstrap_admin
from ingest.auth.roles import Role
from ingest.config import load_settings
from ingest.store import audit, users
from tests.conftest import REGISTRY_FILE


def _scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...] | None = None) -> Any:
    """The first column of the one row ``query`` returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def conn(control: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(control, autocommit=True) as connection:
        yield connection


def test_user_and_token_store_only_the_digest_and_audit_each_change(conn: psycopg.Connection) -> None:
    with conn.transaction():
        user = users.create_user(conn, name="alice", roles=[Role.ENGINEER], regions={"eu-central"}, actor="root")
        info, issued = users.create_token(conn, user="alice", actor="root", label="laptop")
    assert user.regions == frozenset({"eu-central"}) and user.roles == {Role.ENGINEER}
    stored = conn.execute("SELECT * FROM api_tokens").fetchall()
    assert len(stored) == 1
    row_text = repr(stored[0])
    assert issued.secret not in row_text and issued.text not in row_text
    assert stored[0][2] == tokens.hash_secret(issued.secret)
    every_table = _scalar(conn, "SELECT string_agg(t::text, ' ') FROM api_tokens t")
    assert issued.secret not in every_table
    assert _scalar(conn, "SELECT count(*) FROM audit_log WHERE details::text LIKE %s", (f"%{issued.secret}%",)) == 0

    record = users.lookup_token(conn, info.token_id)
    assert record is not None and record.user.name == "alice" and tokens.verify(issued.secret, record.digest)

    with conn.transaction():
        users.update_user(conn, "alice", actor="root", roles=[Role.ENGINEER, Role.OPERATOR], regions=None)
        users.update_user(conn, "alice", actor="root", disabled=True)
        users.revoke_token(conn, info.token_id, actor="root")
    rows = [(r.actor, r.action, r.target) for r in audit.iter_rows(conn, audit.AuditFilter())]
    assert rows == [
        ("root", "token.revoke", f"token:{info.token_id}"),  # again: idempotent, audited
        ("root", "token.revoke", f"token:{info.token_id}"),  # disabling alice revoked her token
        ("root", "user.disable", "user:alice"),
        ("root", "user.update", "user:alice"),
        ("root", "token.create", f"token:{info.token_id}"),
        ("root", "user.create", "user:alice"),
    ]
    by_disable = list(audit.iter_rows(conn, audit.AuditFilter(action="token.revoke")))[-1]
    assert by_disable.details == {"user": "alice", "reason": "user disabled"}
    update = next(r for r in audit.iter_rows(conn, audit.AuditFilter(action="user.update")))
    assert update.details["regions"] == {"from": "eu-central", "to": "*"}
    assert update.details["roles"] == {"from": ["engineer"], "to": ["engineer", "operator"]}


def test_a_change_and_its_audit_row_roll_back_together(conn: psycopg.Connection) -> None:
    with pytest.raises(users.UserExistsError), conn.transaction():
        users.create_user(conn, name="bob", roles=[Role.ADMIN], regions=None, actor="root")
        users.create_user(conn, name="bob", roles=[Role.ADMIN], regions=None, actor="root")
    assert _scalar(conn, "SELECT count(*) FROM users") == 0
    assert _scalar(conn, "SELECT count(*) FROM audit_log") == 0


def test_audit_log_is_append_only(conn: psycopg.Connection) -> None:
    audit.record(
        conn,
        actor="alice",
        action="device.update",
        target="device:x",
        regions=["eu-central"],
        details={"field": "profile"},
    )
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit_log is append-only"):
            conn.execute(statement)
    rows = list(audit.iter_rows(conn, audit.AuditFilter()))
    assert [(r.actor, r.regions, r.details) for r in rows] == [("alice", ["eu-central"], {"field": "profile"})]


def test_audit_filters_scope_and_keyset_pages(conn: psycopg.Connection) -> None:
    for i in range(7):
        audit.record(
            conn,
            actor=f"a{i % 2}",
            action="x.change",
            target=f"t{i}",
            regions=["eu-central"] if i % 3 == 0 else (["us-east"] if i % 3 == 1 else []),
        )
    everything = list(audit.iter_rows(conn, audit.AuditFilter(), batch=2))
    assert [r.target for r in everything] == [f"t{i}" for i in reversed(range(7))]
    eu_scope = [r.target for r in audit.iter_rows(conn, audit.AuditFilter(scope=frozenset({"eu-central"})))]
    assert eu_scope == ["t6", "t5", "t3", "t2", "t0"]  # its region's rows and rows naming no region
    assert [r.target for r in audit.iter_rows(conn, audit.AuditFilter(actor="a1", region="us-east"))] == ["t1"]
    with conn.cursor() as cur:
        page = audit.list_rows(cur, audit.AuditFilter(before_id=everything[2].id), limit=2)
    assert [r.target for r in page] == ["t3", "t2"]


def test_bootstrap_admin_only_when_no_user_exists(control: str, tmp_path: Path) -> None:
    issued = tokens.generate()
    secret_file = tmp_path / "admin_token"
    secret_file.write_text(issued.text + "\n")
    settings = load_settings(
        control_dsn=control,
        region_dsns={"eu-central": control},
        registry_file=REGISTRY_FILE,
        bootstrap_admin_token_file=secret_file,
    )
    assert bootstrap_admin(settings) is True
    assert bootstrap_admin(settings) is False  # a user exists now: nothing changes
    with psycopg.connect(control) as conn:
        admin = users.get_user(conn, "admin")
        assert admin.roles == set(Role) and admin.regions is None
        record = users.lookup_token(conn, issued.token_id)
        assert record is not None and tokens.verify(issued.secret, record.digest)
        actions = [r.action for r in audit.iter_rows(conn, audit.AuditFilter(actor="bootstrap"))]
    assert actions == ["token.create", "user.create"]


def test_bad_bootstrap_token_file_is_a_config_error(control: str, tmp_path: Path) -> None:
    from ingest.errors import ConfigError

    bad = tmp_path / "token"
    bad.write_text("hunter2")
    with pytest.raises(
        ConfigError, match=f"INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE: .*token file {re.escape(str(bad))}: not an API token"
    ):
        load_settings(
            control_dsn=control,
            region_dsns={"eu-central": control},
            registry_file=REGISTRY_FILE,
            bootstrap_admin_token_file=bad,
        )
