"""Authentication (bearer tokens), roles, region scope, users and tokens, the audit trail and its export,
request size and rate limits; against a real control store."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from devstack import PostgresServer
from ingest.api import create_app
from ingest.api.config import ApiSettings
from ingest.auth import tokens
from ingest.auth.roles import Role
from ingest.runtime import Runtime
from ingest.store.migrate import migrate
from tests.ingest.api.api_seed import FAST
from tests.ingest.api.auth_support import bearer, issue_token

TokenFor = Callable[..., dict[str, str]]
DEVICES = "/api/v1/devices"


# --- 401 -------------------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(anonymous: TestClient) -> None:
    response = anonymous.get(DEVICES)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ingest"'
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize("header", ["Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer rtk_abcdefghijkl_" + "x" * 43])
def test_malformed_unknown_or_non_bearer_tokens_are_401(anonymous: TestClient, header: str) -> None:
    response = anonymous.get(DEVICES, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_secret_of_a_known_token_is_401(anonymous: TestClient, api_dsns: tuple[str, dict[str, str]]) -> None:
    _, text = issue_token(api_dsns[0], [Role.ENGINEER])
    parsed = tokens.parse(text)
    forged = tokens.format_token(parsed.token_id, "A" * 43)
    response = anonymous.get(DEVICES, headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid token: unknown token or wrong secret"
    assert response.headers["www-authenticate"] == 'Bearer realm="ingest", error="invalid_token"'
    assert anonymous.get(DEVICES, headers=bearer(text)).status_code == 200


def test_expired_token_is_401(anonymous: TestClient, api_dsns: tuple[str, dict[str, str]]) -> None:
    _, text = issue_token(api_dsns[0], [Role.ENGINEER], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = anonymous.get(DEVICES, headers=bearer(text))
    assert response.status_code == 401 and "expired at" in response.json()["detail"]


def test_revoked_token_and_disabled_user_are_401(client: TestClient, anonymous: TestClient) -> None:
    client.post("/api/v1/users", json={"name": "eve", "roles": ["engineer"], "regions": "*"}).raise_for_status()
    created = client.post("/api/v1/users/eve/tokens", json={"label": "ci"}).json()
    second = client.post("/api/v1/users/eve/tokens", json={}).json()
    assert anonymous.get(DEVICES, headers=bearer(created["token"])).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{created['token_id']}").json()
    assert revoked["revoked_by"] == "test-admin" and revoked["revoked_at"]
    response = anonymous.get(DEVICES, headers=bearer(created["token"]))
    assert response.status_code == 401 and "was revoked" in response.json()["detail"]
    assert anonymous.get(DEVICES, headers=bearer(second["token"])).status_code == 200
    client.delete("/api/v1/users/eve").raise_for_status()
    response = anonymous.get(DEVICES, headers=bearer(second["token"]))
    assert response.status_code == 401 and response.json()["detail"] == "user 'eve' is disabled"


def test_disabling_a_user_revokes_its_tokens_and_they_are_no_longer_listed(client: TestClient) -> None:
    """Issue 12 (schemathesis): tokens were still listed, as usable, after their user was disabled."""
    client.post("/api/v1/users", json={"name": "irma", "roles": ["engineer"], "regions": "*"}).raise_for_status()
    first = client.post("/api/v1/users/irma/tokens", json={"label": "a"}).json()
    second = client.post("/api/v1/users/irma/tokens", json={"label": "b"}).json()
    assert {t["token_id"] for t in client.get("/api/v1/users/irma/tokens").json()} == {
        first["token_id"],
        second["token_id"],
    }
    client.delete("/api/v1/users/irma").raise_for_status()
    assert client.get("/api/v1/users/irma/tokens").json() == []
    everything = client.get("/api/v1/users/irma/tokens", params={"include_inactive": True}).json()
    assert len(everything) == 2 and all(t["revoked_at"] and t["revoked_by"] == "test-admin" for t in everything)
    client.patch("/api/v1/users/irma", json={"disabled": False}).raise_for_status()
    assert client.get("/api/v1/users/irma/tokens").json() == []  # enabling again does not revive them
    revocations = [
        e
        for e in client.get("/api/v1/audit", params={"action": "token.revoke"}).json()["items"]
        if e["details"].get("user") == "irma"
    ]
    assert len(revocations) == 2 and all(e["details"]["reason"] == "user disabled" for e in revocations)


def test_open_endpoints_need_no_token(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/health").status_code == 200
    assert anonymous.get("/api/v1/metrics").status_code == 200
    assert anonymous.get("/api/v1/schema/telemetry").status_code == 200
    assert anonymous.get("/api/v1/openapi.json").status_code == 200
    assert anonymous.get("/dashboard").status_code == 200


# --- 403: roles and scope ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed", "denied"),
    [
        ("GET", "/api/v1/devices/de-munich-cnc-01/latest", Role.ENGINEER, Role.COMPLIANCE),
        ("GET", "/api/v1/devices/de-munich-cnc-01/latest", Role.OPERATOR, Role.ADMIN),  # machine data of its sites
        ("GET", "/api/v1/sites/de-munich/summary", Role.ENGINEER, Role.COMPLIANCE),
        ("GET", "/api/v1/devices", Role.OPERATOR, Role.ADMIN),
        ("GET", "/api/v1/gaps", Role.OPERATOR, Role.ADMIN),
        ("GET", "/api/v1/decisions", Role.COMPLIANCE, Role.OPERATOR),
        ("GET", "/api/v1/quarantine", Role.COMPLIANCE, Role.ENGINEER),
        ("GET", "/api/v1/users", Role.ADMIN, Role.COMPLIANCE),
        ("GET", "/api/v1/audit", Role.ADMIN, Role.ENGINEER),
        ("GET", "/api/v1/audit", Role.COMPLIANCE, Role.OPERATOR),
        ("GET", "/api/v1/regions", Role.OPERATOR, None),
    ],
)
def test_role_matrix(
    anonymous: TestClient, token_for: TokenFor, method: str, path: str, allowed: Role, denied: Role | None
) -> None:
    assert anonymous.request(method, path, headers=token_for(allowed)).status_code == 200
    if denied is not None:
        response = anonymous.request(method, path, headers=token_for(denied))
        assert response.status_code == 403
        assert "this endpoint needs the role" in response.json()["detail"]
        assert f"has: {denied.value}" in response.json()["detail"]


def test_policy_activation_needs_compliance_scoped_to_every_region(anonymous: TestClient, token_for: TokenFor) -> None:
    scoped = anonymous.post(
        "/api/v1/policy/activate",
        json={"revision": "sha256:x"},
        headers=token_for(Role.COMPLIANCE, regions={"eu-central"}),
    )
    assert scoped.status_code == 403
    detail = scoped.json()["detail"]
    assert "activating a policy" in detail and "needs a scope of every region" in detail
    wrong_role = anonymous.post("/api/v1/policy/activate", json={"revision": "sha256:x"}, headers=token_for(Role.ADMIN))
    assert wrong_role.status_code == 403


# --- users and tokens ------------------------------------------------------------------------------


def test_users_crud_validation_and_scoped_admin(client: TestClient, anonymous: TestClient, token_for: TokenFor) -> None:
    created = client.post("/api/v1/users", json={"name": "carol", "roles": ["compliance"], "regions": ["eu-central"]})
    assert created.status_code == 201, created.text
    assert created.json()["regions"] == ["eu-central"] and created.json()["created_by"] == "test-admin"
    again = client.post("/api/v1/users", json={"name": "carol", "roles": ["engineer"], "regions": "*"})
    assert again.status_code == 409
    bad = client.post("/api/v1/users", json={"name": "dan", "roles": ["engineer"], "regions": ["atlantis"]})
    assert bad.status_code == 422 and bad.json()["parameter"] == "regions"
    assert "unknown region(s) 'atlantis'" in bad.json()["detail"]
    assert bad.json()["errors"][0]["accepted"] == ["ap-southeast", "cn-north", "eu-central", "us-east", "*"]
    assert client.post("/api/v1/users", json={"name": "dan", "roles": ["root"], "regions": "*"}).status_code == 422
    bad_name = client.post("/api/v1/users", json={"name": "bad name", "roles": ["admin"], "regions": "*"})
    assert bad_name.status_code == 422
    updated = client.patch("/api/v1/users/carol", json={"roles": ["compliance", "engineer"], "regions": "*"}).json()
    assert (updated["roles"], updated["regions"]) == (["compliance", "engineer"], "*")
    assert client.get("/api/v1/users/nobody").status_code == 404
    assert "carol" in {u["name"] for u in client.get("/api/v1/users").json()}

    eu_admin = token_for(Role.ADMIN, regions={"eu-central"})
    outside = anonymous.post(
        "/api/v1/users", json={"name": "frank", "roles": ["engineer"], "regions": ["us-east"]}, headers=eu_admin
    )
    assert outside.status_code == 403 and "us-east" in outside.json()["detail"]
    everywhere = anonymous.post(
        "/api/v1/users", json={"name": "frank", "roles": ["engineer"], "regions": "*"}, headers=eu_admin
    )
    assert everywhere.status_code == 403
    inside = anonymous.post(
        "/api/v1/users", json={"name": "frank", "roles": ["engineer"], "regions": ["eu-central"]}, headers=eu_admin
    )
    assert inside.status_code == 201
    assert anonymous.post("/api/v1/users/carol/tokens", json={}, headers=eu_admin).status_code == 403  # carol: *
    names = {u["name"] for u in anonymous.get("/api/v1/users", headers=eu_admin).json()}
    assert "frank" in names and "carol" not in names


def test_token_is_shown_once_and_listed_without_secret(
    client: TestClient, api_dsns: tuple[str, dict[str, str]]
) -> None:
    client.post("/api/v1/users", json={"name": "gina", "roles": ["engineer"], "regions": "*"}).raise_for_status()
    created = client.post("/api/v1/users/gina/tokens", json={"label": "grafana", "expires_in_days": 30}).json()
    secret = tokens.parse(created["token"]).secret
    assert created["expires_at"] and created["label"] == "grafana"
    listed = client.get("/api/v1/users/gina/tokens").json()
    assert [t["token_id"] for t in listed] == [created["token_id"]]
    assert "token" not in listed[0] and secret not in json.dumps(listed)
    with psycopg.connect(api_dsns[0]) as conn:
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM api_tokens t").fetchall()[0][0]
        audit_dump = conn.execute("SELECT string_agg(a::text, ' ') FROM audit_log a").fetchall()[0][0]
    assert secret not in dump and secret not in audit_dump
    assert tokens.hash_secret(secret) in dump


def test_last_used_at_is_recorded(
    anonymous: TestClient, client: TestClient, api_dsns: tuple[str, dict[str, str]]
) -> None:
    name, text = issue_token(api_dsns[0], [Role.ENGINEER])
    assert client.get(f"/api/v1/users/{name}/tokens").json()[0]["last_used_at"] is None
    anonymous.get(DEVICES, headers=bearer(text)).raise_for_status()
    assert client.get(f"/api/v1/users/{name}/tokens").json()[0]["last_used_at"] is not None


# --- audit trail -----------------------------------------------------------------------------------


def test_changes_are_audited_with_who_and_when(client: TestClient) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    hank = {"name": "hank", "roles": ["operator"], "regions": ["us-east"]}
    client.post("/api/v1/users", json=hank).raise_for_status()
    token = client.post("/api/v1/users/hank/tokens", json={}).json()
    client.patch("/api/v1/users/hank", json={"regions": ["us-east", "eu-central"]}).raise_for_status()
    client.delete(f"/api/v1/tokens/{token['token_id']}").raise_for_status()
    client.delete("/api/v1/users/hank").raise_for_status()
    page = client.get("/api/v1/audit", params={"since": started.isoformat(), "actor": "test-admin"}).json()
    targets = ("user:hank", f"token:{token['token_id']}")
    mine = [(e["action"], e["target"]) for e in page["items"] if e["target"] in targets]
    assert mine == [
        ("user.disable", "user:hank"),
        ("token.revoke", f"token:{token['token_id']}"),
        ("user.update", "user:hank"),
        ("token.create", f"token:{token['token_id']}"),
        ("user.create", "user:hank"),
    ]
    entry = next(e for e in page["items"] if e["action"] == "user.create" and e["target"] == "user:hank")
    assert entry["actor"] == "test-admin" and entry["regions"] == ["us-east"]
    assert datetime.fromisoformat(entry["at"]) >= started


def test_audit_pages_and_exports_csv_and_json_lines(client: TestClient) -> None:
    for i in range(5):
        user = {"name": f"pager{i}", "roles": ["engineer"], "regions": "*"}
        client.post("/api/v1/users", json=user).raise_for_status()
    first = client.get("/api/v1/audit", params={"action": "user.create", "limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_before_id"] == first["items"][-1]["id"]
    second = client.get(
        "/api/v1/audit", params={"action": "user.create", "limit": 3, "before_id": first["next_before_id"]}
    ).json()
    assert all(e["id"] < first["next_before_id"] for e in second["items"])

    export = client.get("/api/v1/audit/export", params={"action": "user.create"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    targets = [r["target"] for r in rows]
    assert {f"user:pager{i}" for i in range(5)} <= set(targets)
    assert all(r["action"] == "user.create" for r in rows) and rows[0]["actor"]
    assert json.loads(rows[0]["details"])["roles"]

    lines = client.get("/api/v1/audit/export", params={"format": "jsonl", "action": "user.create"})
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    objects = [json.loads(line) for line in lines.text.splitlines()]
    assert [o["target"] for o in objects] == targets


def test_audit_respects_the_reader_scope(client: TestClient, anonymous: TestClient, token_for: TokenFor) -> None:
    ivan = {"name": "ivan", "roles": ["engineer"], "regions": ["cn-north"]}
    client.post("/api/v1/users", json=ivan).raise_for_status()
    eu = token_for(Role.COMPLIANCE, regions={"eu-central"})
    seen = anonymous.get("/api/v1/audit", params={"target": "user:ivan"}, headers=eu).json()["items"]
    assert seen == []
    assert client.get("/api/v1/audit", params={"target": "user:ivan"}).json()["items"]


# --- limits ----------------------------------------------------------------------------------------


def test_body_size_limit_declared_and_streamed(client: TestClient) -> None:
    big = {"name": "x", "roles": ["engineer"], "regions": ["eu-central"] * 20_000}
    response = client.post("/api/v1/users", json=big)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "the limit is 65536 bytes" in detail and "INGEST_API_MAX_BODY_BYTES" in detail

    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts as the body streams
        yield b'{"name": "y", "roles": ["engineer"], "regions": ['
        for _ in range(10_000):
            yield b'"eu-central",'
        yield b'"eu-central"]}'

    streamed = client.post("/api/v1/users", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text
    assert "the limit is 65536 bytes" in streamed.json()["detail"]


def test_rate_limit_per_token_and_per_address(runtime: Runtime, api_dsns: tuple[str, dict[str, str]]) -> None:
    settings = ApiSettings(**{**FAST.model_dump(), "rate_limit": "5/minute", "rate_limit_unauthenticated": "3/minute"})
    limited = TestClient(create_app(runtime, settings=settings))
    a = bearer(issue_token(api_dsns[0], [Role.ENGINEER])[1])
    b = bearer(issue_token(api_dsns[0], [Role.ENGINEER])[1])
    assert [limited.get("/api/v1/regions", headers=a).status_code for _ in range(5)] == [200] * 5
    over = limited.get("/api/v1/regions", headers=a)
    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert "rate limit exceeded for token" in over.json()["detail"]
    assert limited.get("/api/v1/regions", headers=b).status_code == 200  # per token
    codes = [limited.get("/api/v1/regions", headers={"Authorization": "Bearer wrong"}).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]  # token guessing from one address is limited
    assert limited.get("/api/v1/health").status_code == 200  # open endpoints are not limited


def test_rate_limit_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        ApiSettings(rate_limit="lots")


# --- quarantine scope ------------------------------------------------------------------------------


@dataclass
class Quarantined:
    client: TestClient
    control: str
    eu_item: uuid.UUID
    cn_item: uuid.UUID


@pytest.fixture(scope="module")
def quarantined(api_pg: PostgresServer, runtime: Runtime) -> Iterator[Quarantined]:
    control = api_pg.create_database("auth_quarantine_control")
    migrate(control, "control", store="control")
    eu, cn = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(control) as conn:
        for qid, region in ((eu, "eu-central"), (cn, "cn-north")):
            conn.execute(
                "INSERT INTO rejections (topic, device_id, code, detail, payload_bytes, quarantine_id, payload_region,"
                " state) VALUES ('tele/v1/s/d', 'd', 'undeclared_field', 'x', 10, %s, %s, 'held')",
                (qid, region),
            )
    pool = ConnectionPool(control, min_size=1, max_size=2, open=True)
    app = create_app(dataclasses.replace(runtime, control=pool, quarantine=None), settings=FAST)
    try:
        yield Quarantined(TestClient(app), control, eu, cn)
    finally:
        pool.close()


def test_compliance_sees_and_releases_only_items_in_scope(quarantined: Quarantined) -> None:
    eu_officer = bearer(issue_token(quarantined.control, [Role.COMPLIANCE], {"eu-central"})[1])
    everyone = bearer(issue_token(quarantined.control, [Role.COMPLIANCE], None)[1])
    c = quarantined.client
    listed = c.get("/api/v1/quarantine", headers=eu_officer).json()
    assert [i["quarantine_id"] for i in listed["items"]] == [str(quarantined.eu_item)]
    assert listed["counts"] == {"held": 1, "open": 1}  # open: held + discarded, what still needs a decision
    assert len(c.get("/api/v1/quarantine", headers=everyone).json()["items"]) == 2
    denied = c.get(f"/api/v1/quarantine/{quarantined.cn_item}", headers=eu_officer)
    assert denied.status_code == 403 and "cn-north" in denied.json()["detail"]
    release = c.post(f"/api/v1/quarantine/{quarantined.cn_item}/release", headers=eu_officer)
    assert release.status_code == 403 and "releasing quarantine item" in release.json()["detail"]
    # in scope: passes authorisation (this API-only process runs no pipeline, hence 503)
    assert c.post(f"/api/v1/quarantine/{quarantined.eu_item}/release", headers=eu_officer).status_code == 503
