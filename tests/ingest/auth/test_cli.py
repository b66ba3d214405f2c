"""``ingest users ...`` / ``ingest tokens ...`` against a real control store."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from devstack import PostgresServer
from ingest.auth import tokens
from ingest.cli import app
from ingest.store import users
from tests.conftest import REGISTRY_FILE


@pytest.fixture
def env(pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    control = pg_server.create_database("cli_auth_control")
    monkeypatch.setenv("INGEST_CONTROL_DSN", control)
    regions = ("eu-central", "us-east", "cn-north", "ap-southeast")
    monkeypatch.setenv("INGEST_REGION_DSNS", json.dumps(dict.fromkeys(regions, control)))
    monkeypatch.setenv("INGEST_REGISTRY_FILE", str(REGISTRY_FILE))
    return control


def test_first_admin_from_the_cli(env: str) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "root", "--role", "admin", "--regions", "*"])
    assert added.exit_code == 0, added.output
    assert "root\troles=admin\tregions=*" in added.output
    created = runner.invoke(app, ["tokens", "create", "root", "--label", "laptop"])
    assert created.exit_code == 0, created.output
    text = created.stdout.strip().splitlines()[-1]
    parsed = tokens.parse(text)
    with psycopg.connect(env) as conn:
        record = users.lookup_token(conn, parsed.token_id)
        assert record is not None and tokens.verify(parsed.secret, record.digest)
        actors = {r[0] for r in conn.execute("SELECT actor FROM audit_log").fetchall()}
    assert len(actors) == 1 and next(iter(actors)).startswith("cli")
    listed = runner.invoke(app, ["tokens", "list", "root"])
    assert parsed.token_id in listed.output and "active" in listed.output and parsed.secret not in listed.output
    revoked = runner.invoke(app, ["tokens", "revoke", parsed.token_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in runner.invoke(app, ["tokens", "list"]).output


@pytest.mark.usefixtures("env")
def test_cli_errors_name_what_is_wrong() -> None:
    runner = CliRunner()
    bad_role = runner.invoke(app, ["users", "add", "x", "--role", "root", "--regions", "*"])
    assert bad_role.exit_code == 2 and "--role: unknown role(s) 'root'" in bad_role.output
    bad_region = runner.invoke(app, ["users", "add", "x", "--role", "engineer", "--regions", "eu-central,mars"])
    assert bad_region.exit_code == 2 and "--regions: unknown region(s) mars" in bad_region.output
    assert runner.invoke(app, ["users", "add", "x", "--role", "engineer", "--regions", "eu-central"]).exit_code == 0
    again = runner.invoke(app, ["users", "add", "x", "--role", "engineer", "--regions", "eu-central"])
    assert again.exit_code == 2 and "exists already" in again.output
    assert "unknown user 'nobody'" in runner.invoke(app, ["tokens", "create", "nobody"]).output
    updated = runner.invoke(app, ["users", "update", "x", "--disable"])
    assert updated.exit_code == 0 and "disabled" in updated.output


def test_generate_prints_a_token_and_stores_nothing() -> None:
    result = CliRunner().invoke(app, ["tokens", "generate"])
    assert result.exit_code == 0
    tokens.parse(result.stdout.strip())
