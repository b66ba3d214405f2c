"""/api/v1/policy: status, drafts, activation without restart, history, what-if; against a real control
store and a real PolicyRuntime (embedded engine), and a fake OPA for the OPA mode."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import tarfile
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from devstack import PostgresServer
from ingest.api import create_app
from ingest.auth.roles import Role
from ingest.config import load_settings
from ingest.policy_runtime import PolicyRuntime
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store.migrate import migrate
from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, Flow, compute_revision
from policy.bundle import bundle_files, read_policy_dir, targz
from tests.ingest.api.api_seed import FAST, REGISTRY_FILE
from tests.ingest.api.auth_support import add_user_with_token, bearer, fixed_token
from tests.ingest.policy_runtime.policies import drop_uk_adequacy
from tests.policy import archive_craft as craft
from tests.policy.decision_seed import draft_without_dpf_and_stricter_vietnam, seed
from tests.policy.permissive import write_allow_all
from tests.policy.test_archive import gnu_long_name
from tests.policy.test_opa_client import FakeOpa

_n = itertools.count(1)
ALICE_TOKEN, BOB_TOKEN = fixed_token("alice"), fixed_token("bob")
ALICE, BOB = bearer(ALICE_TOKEN), bearer(BOB_TOKEN)  # compliance officers scoped to every region
NOBODY = {"Authorization": ""}
DE_TO_GB = Flow(origin="DE", destination="GB", category="personal")


def _copy(target: Path) -> Path:
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, target / sub)
    return target


def _gz(policy_dir: Path) -> bytes:
    return targz(bundle_files(policy_dir, with_tests=True)[1])


@pytest.fixture
def control(api_pg: PostgresServer) -> str:
    dsn = api_pg.create_database(f"policy_api_{next(_n)}")
    migrate(dsn, "control", store="control")
    return dsn


def _client(
    runtime_policy: PolicyRuntime | None, control: str, regions: dict[str, str], registry: Registry, **settings: object
) -> tuple[TestClient, ConnectionPool]:
    for name, token in (("alice", ALICE_TOKEN), ("bob", BOB_TOKEN)):
        add_user_with_token(control, name, [Role.COMPLIANCE], None, token)
    pool = ConnectionPool(control, min_size=1, max_size=2, open=True, kwargs={"connect_timeout": 2})
    runtime = Runtime(
        settings=load_settings(control_dsn=control, region_dsns=regions, registry_file=REGISTRY_FILE, **settings),
        registry=registry,
        control=pool,
        regions={},
        policy=runtime_policy.active if runtime_policy else EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR),
        extras={"policy_runtime": runtime_policy} if runtime_policy else {},
    )
    return TestClient(create_app(runtime, settings=FAST), headers=ALICE), pool


@pytest.fixture
def setup(
    control: str, api_dsns: tuple[str, dict[str, str]], api_registry: Registry, tmp_path: Path
) -> Iterator[tuple[TestClient, PolicyRuntime, Path]]:
    policy_dir = _copy(tmp_path / "policy")
    runtime = PolicyRuntime(
        kind="embedded", policy_dir=policy_dir, control_dsn=control, replica="api-1", cache_size=32, watch_s=0
    )
    runtime.start()
    client, pool = _client(runtime, control, api_dsns[1], api_registry)
    yield client, runtime, tmp_path
    runtime.stop()
    pool.close()


def test_status(setup: tuple[TestClient, PolicyRuntime, Path]) -> None:
    client, runtime, _ = setup
    runtime.active.decide(DE_TO_GB)
    body = client.get("/api/v1/policy").json()
    assert body["revision"] == compute_revision(DEFAULT_POLICY_DIR)
    assert (body["engine"], body["source"], body["activated_by"], body["replica"]) == (
        "embedded",
        "startup",
        "startup",
        "api-1",
    )
    assert body["cache"] == {"hits": 0, "misses": 1, "size": 1, "maxsize": 32}
    assert body["policy_dir"] == str(runtime.policy_dir) and body["file_revision"] == body["revision"]
    assert datetime.fromisoformat(body["loaded_at"]) <= datetime.now(UTC)
    assert body["last_refused"] is None and body["unrecorded_activations"] == 0


def test_upload_activate_and_history(setup: tuple[TestClient, PolicyRuntime, Path]) -> None:
    client, runtime, tmp = setup
    before = runtime.active.revision
    good = _copy(tmp / "good")
    drop_uk_adequacy(good, fix_tests=True)
    bad = _copy(tmp / "bad")
    drop_uk_adequacy(bad, fix_tests=False)  # same data, tests not updated: same revision, failing tests

    response = client.post(
        "/api/v1/policy/drafts", content=_gz(bad), headers={**ALICE, "Content-Type": "application/gzip"}
    )
    assert response.status_code == 201, response.text
    refused_draft = response.json()
    assert refused_draft["loads"] and refused_draft["tests_failed"] == 1
    assert "case_eu_personal_to_uk_adequate_until_2031" in refused_draft["error"]

    response = client.post("/api/v1/policy/activate", json={"revision": refused_draft["revision"]}, headers=BOB)
    assert response.status_code == 422
    assert "Rego test(s) fail" in response.json()["detail"]
    assert "case_eu_personal_to_uk_adequate_until_2031" in response.json()["detail"]
    status = client.get("/api/v1/policy").json()
    assert status["revision"] == before and status["last_refused"]["activated_by"] == "bob"
    assert runtime.active.decide(DE_TO_GB).allow  # the running revision stayed

    response = client.post(
        "/api/v1/policy/drafts", content=_gz(good), headers={**ALICE, "Content-Type": "application/gzip"}
    )
    assert response.status_code == 201
    draft = response.json()
    assert draft["revision"] == refused_draft["revision"] == compute_revision(good)
    assert draft["draft_id"] != refused_draft["draft_id"] and draft["error"] is None and draft["tests_failed"] == 0

    response = client.post("/api/v1/policy/activate", json={"revision": draft["revision"]}, headers=ALICE)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["outcome"], result["source"], result["activated_by"]) == ("accepted", "api", "alice")
    assert (result["previous_revision"], result["draft_id"]) == (before, draft["draft_id"])
    assert result["tests_failed"] == 0 and result["tests_passed"] > 100
    status = client.get("/api/v1/policy").json()
    assert (status["revision"], status["source"], status["activated_by"]) == (draft["revision"], "api", "alice")
    assert status["cache"] == {"hits": 0, "misses": 0, "size": 1, "maxsize": 32}  # new, warmed with DE_TO_GB
    assert not runtime.active.decide(DE_TO_GB).allow  # the next decision uses the new revision

    history = client.get("/api/v1/policy/activations").json()
    assert [(i["source"], i["outcome"], i["activated_by"]) for i in history["items"]] == [
        ("api", "accepted", "alice"),
        ("api", "refused", "bob"),
        ("startup", "accepted", "startup"),
    ]
    assert history["items"][1]["error"] and history["items"][1]["draft_id"] == refused_draft["draft_id"]
    refused = client.get("/api/v1/policy/activations", params={"outcome": "refused"}).json()["items"]
    assert [i["activated_by"] for i in refused] == ["bob"]
    drafts = client.get("/api/v1/policy/drafts").json()
    assert [d["draft_id"] for d in drafts] == [draft["draft_id"], refused_draft["draft_id"]]
    assert all(d["uploaded_by"] == "alice" and d["tests"] >= 8 for d in drafts)


def test_activation_by_draft_id_invariants_and_the_file_policy_again(
    setup: tuple[TestClient, PolicyRuntime, Path],
) -> None:
    """Issue 12/16: a permissive draft with a trivial test is refused naming the broken invariant; activation
    by draft id; an untested upload of the same revision does not shadow the tested one; a later success
    clears the refusal banner; the policy directory is activated again without uploading it."""
    client, runtime, tmp = setup
    file_revision = runtime.active.revision
    gz = {**ALICE, "Content-Type": "application/gzip"}

    permissive = client.post("/api/v1/policy/drafts", content=_gz(write_allow_all(tmp / "allow-all")), headers=gz)
    assert permissive.status_code == 201, permissive.text
    body = permissive.json()
    assert body["tests_failed"] == 0 and "cn-ciio-personal-stays-in-cn" in body["invariants_failed"]
    refused = client.post("/api/v1/policy/activate", json={"draft_id": body["draft_id"]}, headers=BOB)
    assert refused.status_code == 422 and "cn-ciio-personal-stays-in-cn" in refused.json()["detail"]
    assert client.get("/api/v1/policy").json()["last_refused"]["activated_by"] == "bob"

    tested_dir = _copy(tmp / "tested")
    drop_uk_adequacy(tested_dir, fix_tests=True)
    tested = client.post("/api/v1/policy/drafts", content=_gz(tested_dir), headers=gz).json()
    untested_files = {
        name: content.decode()
        for name, content in read_policy_dir(tested_dir).items()
        if not name.endswith("_test.rego")
    }
    untested = client.post("/api/v1/policy/drafts", json=untested_files, headers=ALICE).json()
    assert untested["revision"] == tested["revision"] and untested["tests"] == 0 and untested["error"]
    listed = {d["draft_id"]: d for d in client.get("/api/v1/policy/drafts").json()}
    assert listed[tested["draft_id"]]["error"] is None and listed[tested["draft_id"]]["loads"] is True
    assert "no Rego tests" in listed[untested["draft_id"]]["error"]
    assert "cn-ciio-personal-stays-in-cn" in listed[body["draft_id"]]["invariants_failed"]

    response = client.post("/api/v1/policy/activate", json={"revision": tested["revision"]}, headers=ALICE)
    assert response.status_code == 200, response.text
    assert response.json()["draft_id"] == tested["draft_id"]  # the tested draft, though uploaded before
    status = client.get("/api/v1/policy").json()
    assert status["revision"] == tested["revision"] and status["last_refused"] is None
    assert status["paused"] is None and status["invariants"] >= 12

    response = client.post("/api/v1/policy/activate", json={"file": True}, headers=ALICE)
    assert response.status_code == 200, response.text
    assert (response.json()["revision"], response.json()["draft_id"]) == (file_revision, None)
    assert client.get("/api/v1/policy").json()["revision"] == file_revision

    for bad in ({}, {"file": True, "draft_id": tested["draft_id"]}, {"draft_id": 5}):
        response = client.post("/api/v1/policy/activate", json=bad, headers=ALICE)
        assert response.status_code == 422, (bad, response.text)
    response = client.post("/api/v1/policy/activate", json={"draft_id": "sha256:nope"}, headers=ALICE)
    assert response.status_code == 404 and "no draft sha256:nope" in response.json()["detail"]


def test_json_upload_and_a_policy_directory_archive(setup: tuple[TestClient, PolicyRuntime, Path]) -> None:
    client, _, tmp = setup
    draft = _copy(tmp / "draft")
    drop_uk_adequacy(draft, fix_tests=True)
    files = {name: content.decode() for name, content in read_policy_dir(draft).items()}
    response = client.post("/api/v1/policy/drafts", json=files, headers=ALICE)
    assert response.status_code == 201 and response.json()["revision"] == compute_revision(draft)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(draft / "rego", arcname="rego")
        tar.add(draft / "data", arcname="data")
    response = client.post(
        "/api/v1/policy/drafts", content=buffer.getvalue(), headers={**ALICE, "Content-Type": "application/x-tar"}
    )
    assert response.status_code == 201 and response.json()["revision"] == compute_revision(draft)


@pytest.mark.parametrize(
    ("body", "headers", "status", "detail"),
    [
        (b"{}", {**NOBODY, "Content-Type": "application/json"}, 401, "authentication required"),
        (b"x", {**ALICE, "Content-Type": "text/plain"}, 415, "Content-Type text/plain not supported"),
        (b"\x1f\x8bnot gzip", {**ALICE, "Content-Type": "application/gzip"}, 422, "not a readable tar archive"),
        (b"[1]", {**ALICE, "Content-Type": "application/json"}, 422, "non-empty JSON object"),
        (
            json.dumps({"../../etc/x.rego": "package x"}).encode(),
            {**ALICE, "Content-Type": "application/json"},
            422,
            "inside the policy directory",
        ),
        (
            json.dumps({"rego/x.rego": "package x", "data/a.json": "{}", "run.sh": "rm -rf /"}).encode(),
            {**ALICE, "Content-Type": "application/json"},
            422,
            "may only hold",
        ),
    ],
)
def test_unusable_uploads(
    setup: tuple[TestClient, PolicyRuntime, Path], body: bytes, headers: dict[str, str], status: int, detail: str
) -> None:
    client, _, _ = setup
    response = client.post("/api/v1/policy/drafts", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_crafted_archives_get_a_4xx_naming_the_entry_with_bounded_memory(
    setup: tuple[TestClient, PolicyRuntime, Path],
) -> None:
    """A GNU long name of 64 MiB in a 64 KB upload, 20,000 directory entries, a 256 MiB gzip bomb: each is
    refused with 422 naming the entry, and the request allocates a few MiB, not the unpacked size."""
    client, _, _ = setup
    mib = 1 << 20

    def directories() -> Iterator[bytes]:
        for i in range(20_000):
            yield craft.header(f"rego/d{i}/", 0, b"5")
        yield from craft.end()

    def bomb() -> Iterator[bytes]:
        yield from craft.small_policy()
        yield craft.header("data/bomb.json", 256 * mib)
        yield from craft.repeated(b"\0", 256 * mib, chunk=8 * mib)
        yield from craft.end()

    cases = [
        (craft.gzipped(gnu_long_name(64 * mib)), "GNU long name of 67108864 bytes"),
        (craft.gzipped(directories()), "rego/d2000: the archive holds more than 2000 entries"),
        (craft.gzipped(bomb()), "data/bomb.json: 268435456 bytes"),
    ]
    for archive, expected in cases:
        tracemalloc.start()
        try:
            response = client.post(
                "/api/v1/policy/drafts", content=archive, headers={**ALICE, "Content-Type": "application/gzip"}
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert response.status_code == 422, response.text[:500]
        detail = response.json()["detail"]
        assert expected in detail and len(detail) < 400, detail[:500]
        assert peak < 24 * mib, f"{expected}: the upload allocated {peak / mib:.0f} MiB"


def test_too_large_and_unknown_and_actorless(
    control: str, api_dsns: tuple[str, dict[str, str]], api_registry: Registry, tmp_path: Path
) -> None:
    runtime = PolicyRuntime(
        kind="embedded", policy_dir=_copy(tmp_path / "p"), control_dsn=control, replica="r", watch_s=0
    )
    client, pool = _client(runtime, control, api_dsns[1], api_registry, policy_draft_max_bytes=4096)
    try:
        response = client.post(
            "/api/v1/policy/drafts", content=b"\0" * 5000, headers={**ALICE, "Content-Type": "application/gzip"}
        )
        assert response.status_code == 413 and "limit is 4096" in response.json()["detail"]
        response = client.post("/api/v1/policy/activate", json={"revision": "sha256:unknown"}, headers=ALICE)
        assert response.status_code == 404 and "no draft with revision" in response.json()["detail"]
        response = client.post("/api/v1/policy/activate", json={"revision": "sha256:unknown"}, headers=NOBODY)
        assert response.status_code == 401
        response = client.post("/api/v1/policy/whatif", json={"revision": "sha256:unknown"})
        assert response.status_code == 404
    finally:
        pool.close()


def test_whatif_against_an_uploaded_draft(setup: tuple[TestClient, PolicyRuntime, Path], control: str) -> None:
    client, runtime, tmp = setup
    now = datetime.now(UTC)
    seed(control, runtime.active.state.inner, messages=12, until=now, spread=timedelta(hours=2))
    draft = draft_without_dpf_and_stricter_vietnam(_copy(tmp / "draft"))
    upload = client.post(
        "/api/v1/policy/drafts", content=_gz(draft), headers={**ALICE, "Content-Type": "application/gzip"}
    ).json()
    assert upload["loads"]  # its tests fail (they pin the DPF), but what-if only needs it to load
    response = client.post("/api/v1/policy/whatif", json={"revision": upload["revision"], "window_s": 3 * 3600})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["draft_revision"] == upload["revision"] and report["changed_decisions"] == 24
    changed = {(t["origin"], t["region"], t["old"], t["new"]) for t in report["transitions"] if t["changed"]}
    assert changed == {("DE", "us-east", "stored", "denied"), ("VN", "ap-southeast", "stored", "denied")}
    assert report["newly_quarantined"]["messages"] == 12
    assert {e["device_id"] for e in report["examples"]} == {"de-munich-cnc-01", "vn-hanoi-press-01"}
    same = client.post("/api/v1/policy/whatif", json={"revision": runtime.active.revision, "window_s": 3 * 3600})
    assert same.status_code == 200 and same.json()["changed_decisions"] == 0
    empty = client.post(
        "/api/v1/policy/whatif",
        json={
            "revision": upload["revision"],
            "since": now.isoformat(),
            "until": (now - timedelta(hours=1)).isoformat(),
        },
    )
    assert empty.status_code == 422 and "empty window" in empty.json()["detail"]


def test_opa_mode_answers_409(control: str, api_dsns: tuple[str, dict[str, str]], api_registry: Registry) -> None:
    with FakeOpa(EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)) as fake:
        runtime = PolicyRuntime(
            kind="opa", policy_dir=DEFAULT_POLICY_DIR, control_dsn=control, replica="o", opa_url=fake.url, watch_s=0
        )
        client, pool = _client(runtime, control, api_dsns[1], api_registry)
        try:
            assert client.get("/api/v1/policy").json()["engine"] == "opa"
            response = client.post(
                "/api/v1/policy/drafts",
                content=_gz(DEFAULT_POLICY_DIR),
                headers={**ALICE, "Content-Type": "application/gzip"},
            )
            assert response.status_code == 409 and "managed by OPA bundles" in response.json()["detail"]
            response = client.post("/api/v1/policy/activate", json={"revision": "sha256:x"}, headers=ALICE)
            assert response.status_code == 409
        finally:
            runtime.stop()
            pool.close()


def test_no_policy_runtime_is_503(control: str, api_dsns: tuple[str, dict[str, str]], api_registry: Registry) -> None:
    client, pool = _client(None, control, api_dsns[1], api_registry)
    try:
        response = client.get("/api/v1/policy")
        assert response.status_code == 503 and "no policy runtime" in response.json()["detail"]
        assert client.get("/api/v1/policy/activations").status_code == 200  # history is in the control store
    finally:
        pool.close()


def test_openapi_documents_the_policy_endpoints(setup: tuple[TestClient, PolicyRuntime, Path]) -> None:
    client, _, _ = setup
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {
        "/api/v1/policy",
        "/api/v1/policy/activations",
        "/api/v1/policy/drafts",
        "/api/v1/policy/activate",
        "/api/v1/policy/whatif",
    } <= set(paths)
    upload = paths["/api/v1/policy/drafts"]["post"]
    assert set(upload["requestBody"]["content"]) == {"application/gzip", "application/json"}
    assert {"201", "401", "409", "413", "415", "422"} <= set(upload["responses"])
