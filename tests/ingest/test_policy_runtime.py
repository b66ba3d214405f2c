"""Policy activation without restart: file changes, API drafts, other replicas, OPA bundles, and the
running ingest picking up the new revision for the next message. Real PostgreSQL, Mosquitto and policies."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from devstack import MosquittoServer
from ingest.policy_runtime import (
    ActivationRefused,
    ActivePolicy,
    DraftNotFoundError,
    ManagedByOpaError,
    PolicyRuntime,
)
from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, EmbeddedPolicyEngine, Flow, PolicyEngine, compute_revision
from policy.bundle import files_digest, read_policy_dir
from policy.errors import PolicyUnavailableError
from policy.invariants import InvariantsBroken
from tests.integration.ingest_harness import batch_payload, publisher, query, running_ingest, wait_until
from tests.policy.permissive import write_allow_all
from tests.policy.test_opa_client import FakeOpa
from wire import DataTopic

DE_TO_GB = Flow(origin="DE", destination="GB", category="personal")
DE_TO_US = Flow(origin="DE", destination="US", category="personal")


def copy_policy(target: Path) -> Path:
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, target / sub)
    return target


def drop_uk_adequacy(policy_dir: Path, *, fix_tests: bool) -> None:
    """Data edit: the EU's UK adequacy decision is gone. With ``fix_tests`` the decision case that pins it is
    updated too; without, that case fails and the candidate must be refused."""
    path = policy_dir / "data" / "adequacy.json"
    data = json.loads(path.read_text())
    data["EU_ADEQ"]["entries"] = [e for e in data["EU_ADEQ"]["entries"] if not (isinstance(e, dict) and e["c"] == "GB")]
    path.write_text(json.dumps(data, indent=2))
    if fix_tests:
        test = policy_dir / "rego" / "residency" / "eu_test.rego"
        source = test.read_text()
        start = source.index("case_eu_personal_to_uk_adequate_until_2031 := {")
        end = source.index("\n}\n", start) + 3
        test.write_text(source[:start] + source[end:] + (
            "\ncase_eu_personal_to_uk_no_longer_adequate := {\n"
            '\t"flow": {"origin": "DE", "destination": "GB", "category": "personal"},\n'
            '\t"expect": {"allow": false},\n}\n'
        ))


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return copy_policy(tmp_path / "policy")


def make_runtime(control: str, policy_dir: Path, replica: str = "ingest-a", **kw: Any) -> PolicyRuntime:
    return PolicyRuntime(kind="embedded", policy_dir=policy_dir, control_dsn=control, replica=replica,
                         cache_size=kw.pop("cache_size", 64), watch_s=kw.pop("watch_s", 0), **kw)


def activations(control: str) -> list[dict[str, Any]]:
    with psycopg.connect(control, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM policy_activations ORDER BY id").fetchall()


# --- ActivePolicy -------------------------------------------------------------------------------------


def test_active_policy_implements_the_engine_protocol_and_swaps_with_a_new_cache(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir)
    active = runtime.active
    assert isinstance(active, ActivePolicy) and isinstance(active, PolicyEngine)
    assert active.revision == compute_revision(DEFAULT_POLICY_DIR)
    assert active.decide(DE_TO_GB).allow and active.decide_many([DE_TO_GB, DE_TO_US])[1].allow is False
    assert active.cache_stats() == {"hits": 1, "misses": 2, "size": 2, "maxsize": 64}
    old_engine = active.state.engine
    drop_uk_adequacy(policy_dir, fix_tests=True)
    result = runtime.check_files()
    assert result is not None and result.outcome == "accepted" and result.source == "file"
    assert active.revision == compute_revision(policy_dir) != result.previous_revision
    assert active.state.engine is not old_engine and isinstance(active.state.engine, CachedPolicyEngine)
    # a new cache, warmed before the swap with the flows the old one served (decided by the new revision)
    assert active.cache_stats() == {"hits": 0, "misses": 0, "size": 2, "maxsize": 64}
    decision = active.decide(DE_TO_GB)
    assert not decision.allow and decision.policy_revision == active.revision
    assert active.cache_stats()["hits"] == 1
    assert runtime.check_files() is None  # nothing changed since


def test_decisions_during_an_activation_come_from_one_revision_or_the_other(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir, cache_size=0)
    before = runtime.active.revision
    drop_uk_adequacy(policy_dir, fix_tests=True)
    after = compute_revision(policy_dir)
    seen: list[tuple[float, str, bool]] = []  # (when the decision started, revision, allow)
    errors: list[BaseException] = []
    stop = threading.Event()

    def decide() -> None:
        while not stop.is_set():
            try:
                started = time.monotonic()
                d = runtime.active.decide(DE_TO_GB)
                seen.append((started, d.policy_revision, d.allow))
            except BaseException as exc:  # recorded and asserted below
                errors.append(exc)
                return

    workers = [threading.Thread(target=decide) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        assert runtime.check_files() is not None
        activated = time.monotonic()
        deadline = activated + 60  # a condition, not a time: decisions started after the activation returned
        while sum(1 for started, _, _ in list(seen) if started > activated) < 5 and not errors:
            assert time.monotonic() < deadline, "no decision started after the activation"
            time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not errors
    assert {(r, a) for _, r, a in seen} <= {(before, True), (after, False)}
    assert {(r, a) for started, r, a in seen if started > activated} == {(after, False)}


# --- file changes -------------------------------------------------------------------------------------


def test_file_change_is_recorded_and_refusals_keep_the_running_revision(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir)
    runtime.start()
    first = runtime.active.revision
    try:
        # 1. a data edit whose Rego tests were not updated: refused, naming the failing test
        drop_uk_adequacy(policy_dir, fix_tests=False)
        refused = runtime.check_files()
        assert refused is not None and refused.outcome == "refused"
        assert "case_eu_personal_to_uk_adequate_until_2031" in (refused.error or "")
        assert runtime.active.revision == first and runtime.active.decide(DE_TO_GB).allow
        assert runtime.check_files() is None  # the same refused revision is not retried every poll
        # 2. broken Rego: refused, naming the file and line
        (policy_dir / "rego" / "residency" / "broken.rego").write_text("package residency\n\n_oops := {a | \n")
        broken = runtime.check_files()
        assert broken is not None and broken.outcome == "refused"
        assert "does not load" in (broken.error or "") and "rego/residency/broken.rego" in (broken.error or "")
        assert runtime.active.revision == first
        assert runtime.status()["last_refused"] is broken
        # 3. fixed: accepted
        (policy_dir / "rego" / "residency" / "broken.rego").unlink()
        drop_uk_adequacy(policy_dir, fix_tests=True)
        accepted = runtime.check_files()
        assert accepted is not None and accepted.outcome == "accepted" and accepted.tests_failed == 0
        assert accepted.tests_passed and accepted.tests_passed > 100
        assert not runtime.active.decide(DE_TO_GB).allow
    finally:
        runtime.stop()
    rows = activations(control)
    assert [(r["source"], r["outcome"]) for r in rows] == [
        ("startup", "accepted"), ("file", "refused"), ("file", "refused"), ("file", "accepted"),
    ]
    assert rows[1]["previous_revision"] == first and rows[1]["error"] and rows[1]["tests_failed"] >= 1
    assert rows[3]["revision"] == runtime.active.revision and rows[3]["previous_revision"] == first
    assert all(r["replica"] == "ingest-a" and r["engine"] == "embedded" for r in rows)
    assert rows[3]["activated_by"] == f"file:{policy_dir}"


def test_the_watcher_thread_notices_a_file_change(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir, watch_s=0.2)
    changes: list[str] = []
    runtime.on_change(changes.append)
    runtime.start()
    try:
        drop_uk_adequacy(policy_dir, fix_tests=True)
        wait_until(lambda: changes == [compute_revision(policy_dir)], 60, "the watcher activated the edit")
    finally:
        runtime.stop()


# --- drafts, API activation and other replicas --------------------------------------------------------


def test_draft_upload_activation_and_a_second_replica_following(control: str, policy_dir: Path, tmp_path: Path):
    a = make_runtime(control, policy_dir, replica="ingest-a")
    b = make_runtime(control, copy_policy(tmp_path / "b"), replica="ingest-b")
    a.start()
    b.start()
    try:
        draft = copy_policy(tmp_path / "draft")
        drop_uk_adequacy(draft, fix_tests=True)
        check = a.upload_draft(read_policy_dir(draft), "alice")
        revision = compute_revision(draft)
        assert check == {"revision": revision, "draft_id": files_digest(read_policy_dir(draft)),
                         "files": check["files"], "bytes": check["bytes"], "tests": check["tests"], "loads": True,
                         "tests_passed": check["tests_passed"], "tests_failed": 0, "invariants_failed": [],
                         "error": None}
        assert check["tests"] >= 8 and check["tests_passed"] > 100
        assert a.active.revision != revision  # uploading does not activate
        with pytest.raises(DraftNotFoundError):
            a.activate("sha256:nope", "alice")
        result = a.activate(revision, "alice")
        assert (result.outcome, result.source, result.activated_by) == ("accepted", "api", "alice")
        assert a.active.revision == revision and not a.active.decide(DE_TO_GB).allow
        assert a.active.state.source == "api" and a.active.state.activated_by == "alice"
        # replica b follows on its next poll, from the draft stored in the control store
        assert b.active.revision != revision
        b.poll()
        assert b.active.revision == revision and not b.active.decide(DE_TO_GB).allow
        a.poll()  # a sees b's record of the same revision: nothing to do
        assert a.active.revision == revision
        # a broken draft is refused and nothing changes
        broken = copy_policy(tmp_path / "broken")
        drop_uk_adequacy(broken, fix_tests=False)
        bad = a.upload_draft(read_policy_dir(broken), "bob")
        assert bad["loads"] and bad["tests_failed"] >= 1 and "eu_personal_to_uk" in bad["error"]
        # same data as alice's draft, only the tests differ: same revision, another draft
        assert bad["revision"] == revision and bad["draft_id"] != check["draft_id"]
        with pytest.raises(ActivationRefused, match="Rego test"):
            a.activate(None, "bob", draft_id=bad["draft_id"])  # by id: that draft, refused
        assert a.active.revision == revision
        assert a.activate(revision, "bob").draft_id == check["draft_id"]  # by revision: the draft that passed
        # a replica started later follows the newest API activation
        c = make_runtime(control, copy_policy(tmp_path / "c"), replica="ingest-c")
        c.start()
        assert c.active.revision == revision
        c.stop()
    finally:
        a.stop()
        b.stop()
    rows = [(r["replica"], r["source"], r["outcome"], r["activated_by"]) for r in activations(control)]
    assert ("ingest-a", "api", "accepted", "alice") in rows
    assert ("ingest-b", "api", "accepted", "alice") in rows
    assert ("ingest-a", "api", "refused", "bob") in rows
    assert ("ingest-c", "api", "accepted", "bob") in rows  # the newest activation: bob's, of alice's draft


def test_a_file_edit_after_an_api_activation_wins_at_restart(control: str, policy_dir: Path, tmp_path: Path):
    a = make_runtime(control, policy_dir)
    a.start()
    draft = copy_policy(tmp_path / "draft")
    drop_uk_adequacy(draft, fix_tests=True)
    a.activate(a.upload_draft(read_policy_dir(draft), "alice")["revision"], "alice")
    (policy_dir / "data" / "groups.json").write_text((policy_dir / "data" / "groups.json").read_text() + "\n")
    assert a.check_files() is not None  # the officer went back to files: newer than the API activation
    a.stop()
    restarted = make_runtime(control, policy_dir)
    restarted.start()
    assert restarted.active.revision == compute_revision(policy_dir)
    restarted.stop()


# --- platform invariants, activation by draft id, the file policy again -----------------------------------


def test_a_permissive_draft_whose_only_test_is_trivial_is_refused_naming_the_invariant(
    control: str, policy_dir: Path, tmp_path: Path
):
    runtime = make_runtime(control, policy_dir)
    runtime.start()
    try:
        before = runtime.active.revision
        check = runtime.upload_draft(read_policy_dir(write_allow_all(tmp_path / "allow-all")), "mallory")
        assert check["loads"] and check["tests_passed"] == 1 and check["tests_failed"] == 0  # its own test passes
        assert "cn-ciio-personal-stays-in-cn" in check["invariants_failed"]
        assert "platform invariant" in check["error"]
        with pytest.raises(ActivationRefused, match="cn-ciio-personal-stays-in-cn") as refused:
            runtime.activate(None, "mallory", draft_id=check["draft_id"])
        assert "CN->US personal (entity=ciio:True): allowed, must be denied" in refused.value.error
        assert runtime.active.revision == before
        assert not runtime.active.decide(Flow(origin="CN", destination="US", category="personal",
                                              entity={"ciio": True})).allow
        assert runtime.status()["last_refused"].error == refused.value.error
    finally:
        runtime.stop()
    row = activations(control)[-1]
    assert (row["source"], row["outcome"], row["activated_by"]) == ("api", "refused", "mallory")
    assert "cn-ciio-personal-stays-in-cn" in row["error"]


def test_a_permissive_policy_directory_is_refused_by_the_file_watch_and_at_startup(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir)
    runtime.start()
    try:
        before = runtime.active.revision
        shutil.rmtree(policy_dir / "rego")
        shutil.rmtree(policy_dir / "data")
        write_allow_all(policy_dir)
        result = runtime.check_files()
        assert result is not None and result.outcome == "refused" and result.source == "file"
        assert "core-data-stays-in-cn-and-vn" in (result.error or "")
        assert runtime.active.revision == before
    finally:
        runtime.stop()
    with pytest.raises(InvariantsBroken, match="cn-ciio-personal-stays-in-cn"):
        make_runtime(control, policy_dir)  # a replica does not start on a policy that breaks an invariant


def test_activation_by_draft_id_and_an_untested_draft_never_shadows_a_tested_one(
    control: str, policy_dir: Path, tmp_path: Path
):
    runtime = make_runtime(control, policy_dir)
    runtime.start()
    try:
        tested_dir = copy_policy(tmp_path / "tested")
        drop_uk_adequacy(tested_dir, fix_tests=True)
        tested = runtime.upload_draft(read_policy_dir(tested_dir), "alice")
        untested_files = {name: content for name, content in read_policy_dir(tested_dir).items()
                          if not name.endswith("_test.rego")}
        untested = runtime.upload_draft(untested_files, "bob")  # same revision, uploaded later, no tests
        assert untested["revision"] == tested["revision"] and untested["draft_id"] != tested["draft_id"]
        assert untested["tests"] == 0 and "no Rego tests" in untested["error"]

        with pytest.raises(ActivationRefused, match="no Rego tests"):
            runtime.activate(None, "bob", draft_id=untested["draft_id"])  # by id: exactly that draft
        assert runtime.status()["last_refused"] is not None
        result = runtime.activate(tested["revision"], "alice")  # by revision: the newest draft that passed
        assert (result.outcome, result.draft_id) == ("accepted", tested["draft_id"])
        assert runtime.status()["last_refused"] is None  # a later success clears the banner
        with pytest.raises(DraftNotFoundError, match="has revision"):
            runtime.activate("sha256:" + "0" * 64, "alice", draft_id=tested["draft_id"])
    finally:
        runtime.stop()


def test_the_file_policy_is_activated_again_after_an_api_draft_without_uploading_it(
    control: str, policy_dir: Path, tmp_path: Path
):
    a = make_runtime(control, policy_dir, replica="ingest-a")
    b = make_runtime(control, copy_policy(tmp_path / "b"), replica="ingest-b")
    a.start()
    b.start()
    try:
        file_revision = a.active.revision
        draft = copy_policy(tmp_path / "draft")
        drop_uk_adequacy(draft, fix_tests=True)
        a.activate(a.upload_draft(read_policy_dir(draft), "alice")["revision"], "alice")
        b.poll()
        assert a.active.revision == b.active.revision != file_revision
        result = a.activate_file("alice")
        assert (result.outcome, result.revision, result.draft_id) == ("accepted", file_revision, None)
        assert a.active.revision == file_revision and a.active.state.source == "api"
        assert a.active.decide(DE_TO_GB).allow
        b.poll()  # the other replica goes back to its own policy directory (same revision)
        assert b.active.revision == file_revision
        # by revision: no draft has the directory's revision, so the directory is what is activated
        a.activate(compute_revision(draft), "alice")
        assert a.activate(file_revision, "alice").draft_id is None and a.active.revision == file_revision
    finally:
        a.stop()
        b.stop()
    rows = [(r["replica"], r["revision"] == file_revision, r["draft_id"]) for r in activations(control)
            if r["source"] == "api" and r["outcome"] == "accepted"]
    assert ("ingest-a", True, None) in rows and ("ingest-b", True, None) in rows


# --- OPA mode --------------------------------------------------------------------------------------------


def test_opa_mode_follows_the_bundle_revision_and_refuses_uploads(control: str):
    engine = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    with FakeOpa(engine, bundle_revision="sha256:" + "11" * 32) as fake:
        runtime = PolicyRuntime(kind="opa", policy_dir=DEFAULT_POLICY_DIR, control_dsn=control, replica="ingest-o",
                                opa_url=fake.url, cache_size=16, watch_s=1)
        runtime.start()
        try:
            assert runtime.active.revision == "sha256:" + "11" * 32
            runtime.active.decide(DE_TO_US)
            runtime.active.decide(DE_TO_US)
            assert runtime.active.cache_stats()["hits"] == 1
            bundles_asked = fake.requests.count(("GET", "/v1/data/system/bundles"))
            runtime.active.decide(DE_TO_GB)
            assert fake.requests.count(("GET", "/v1/data/system/bundles")) == bundles_asked  # not on the hot path
            runtime.poll()
            assert runtime.active.revision == "sha256:" + "11" * 32 and runtime.active.cache_stats()["size"] == 2
            fake.bundle_revision = "sha256:" + "22" * 32  # OPA loaded a new bundle
            runtime.poll()
            assert runtime.active.revision == "sha256:" + "22" * 32
            posts = fake.requests.count(("POST", "/v1/data/residency/decision"))
            # 2 flows before, the same 2 again for the new cache (warmed before the swap), and every platform
            # invariant flow at startup and for the new revision
            assert posts == 4 + 2 * len(runtime.invariants.flows())
            assert runtime.active.cache_stats() == {"hits": 0, "misses": 0, "size": 2, "maxsize": 16}
            with pytest.raises(ManagedByOpaError):
                runtime.upload_draft(read_policy_dir(DEFAULT_POLICY_DIR), "alice")
            with pytest.raises(ManagedByOpaError, match="OPA bundles"):
                runtime.activate("sha256:x", "alice")
        finally:
            runtime.stop()
    rows = activations(control)
    assert [(r["source"], r["revision"][-4:], r["activated_by"]) for r in rows] == [
        ("startup", "1111", "startup"), ("opa", "2222", "opa-bundle"),
    ]


def test_an_opa_revision_that_breaks_an_invariant_pauses_routing_until_a_good_one(control: str, tmp_path: Path):
    good = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    with FakeOpa(good, bundle_revision="sha256:" + "11" * 32) as fake:
        runtime = PolicyRuntime(kind="opa", policy_dir=DEFAULT_POLICY_DIR, control_dsn=control, replica="ingest-o",
                                opa_url=fake.url, cache_size=16, watch_s=0)
        runtime.start()
        try:
            assert runtime.active.held is None
            fake.engine = EmbeddedPolicyEngine.from_dir(write_allow_all(tmp_path / "allow-all"))
            fake.bundle_revision = "sha256:" + "33" * 32  # OPA loaded a permissive bundle
            runtime.poll()
            held = runtime.active.held
            assert held is not None and "sha256:" + "33" * 32 in held and "cn-ciio-personal-stays-in-cn" in held
            assert runtime.status()["paused"] == held
            decided: list[Any] = []
            waiter = threading.Thread(target=lambda: decided.append(runtime.active.decide(DE_TO_US)), daemon=True)
            waiter.start()
            waiter.join(1.5)
            assert waiter.is_alive() and not decided  # nothing is decided (so nothing routed) meanwhile
            runtime.poll()  # the same revision is not checked again
            assert runtime.active.held == held
            fake.engine = good
            fake.bundle_revision = "sha256:" + "44" * 32
            runtime.poll()
            waiter.join(10)
            assert runtime.active.held is None and runtime.active.revision == "sha256:" + "44" * 32
            assert decided and not decided[0].allow  # decided by the good revision, after the pause
        finally:
            runtime.stop()
    rows = activations(control)
    assert [(r["source"], r["outcome"], r["revision"][-4:]) for r in rows] == [
        ("startup", "accepted", "1111"), ("opa", "refused", "3333"), ("opa", "accepted", "4444"),
    ]
    assert "cn-ciio-personal-stays-in-cn" in rows[1]["error"]


def test_stopping_releases_a_decision_waiting_on_a_paused_policy(control: str, tmp_path: Path):
    with FakeOpa(EmbeddedPolicyEngine.from_dir(write_allow_all(tmp_path / "allow-all")),
                 bundle_revision="sha256:" + "55" * 32) as fake:
        runtime = PolicyRuntime(kind="opa", policy_dir=DEFAULT_POLICY_DIR, control_dsn=control, replica="ingest-p",
                                opa_url=fake.url, cache_size=16, watch_s=0)
        runtime.start()  # OPA already serves a permissive bundle: the replica starts paused
        errors: list[BaseException] = []

        def decide() -> None:
            try:
                runtime.active.decide(DE_TO_US)
            except PolicyUnavailableError as exc:
                errors.append(exc)

        waiter = threading.Thread(target=decide, daemon=True)
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive()
        runtime.stop()
        waiter.join(10)
        assert not waiter.is_alive() and errors and "routing paused" in str(errors[0])
    assert [(r["source"], r["outcome"]) for r in activations(control)] == [("startup", "refused")]


# --- the running ingest -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_running_ingest_decides_the_next_message_with_the_new_revision(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
):
    """The real service: one message before and one after a file edit, no restart. The edit rewords the
    reason of the EU machine-data rule (data only; the Rego tests still pass), so the second message's
    decisions carry the new revision and the new reason."""
    control, regions = databases
    policy_dir = copy_policy(tmp_path / "policy")
    with running_ingest(mqtt_broker, control, regions, policy_dir=policy_dir, policy_watch_s=0.2) as (service, client):
        first = service.policy.revision
        assert service.router.policy is service.policy_runtime.active
        status = client.get("/api/v1/policy").json()
        assert status["revision"] == first and status["engine"] == "embedded" and status["source"] == "startup"
        pub = publisher(mqtt_broker)
        topic = str(DataTopic("de-munich", "de-munich-cnc-01"))
        try:
            pub.publish(topic, batch_payload("de-munich-cnc-01", 1, [{"spindle_temp_c": 40.0}]), qos=1)
            wait_until(lambda: service.stats.snapshot()["messages"]["stored"] >= 1, 20, "first message stored")
            regimes = policy_dir / "data" / "regimes.json"
            data = json.loads(regimes.read_text())
            data["EU"]["categories"]["machine"]["free"] = "non-personal data (reworded by the compliance team)"
            regimes.write_text(json.dumps(data, indent=2))
            new = compute_revision(policy_dir)
            wait_until(lambda: service.stats.snapshot()["policy_revision"] == new, 60, "the watcher activated the edit")
            assert service.policy.revision == new
            assert client.get("/api/v1/policy").json()["source"] == "file"
            pub.publish(topic, batch_payload("de-munich-cnc-01", 2, [{"spindle_temp_c": 41.0}]), qos=1)
            wait_until(lambda: service.stats.snapshot()["messages"]["stored"] >= 2, 20, "second message stored")
        finally:
            pub.loop_stop()
            pub.disconnect()
    rows = query(control, "SELECT seq, region, outcome, policy_revision, reasons->>0 FROM decisions"
                          " WHERE category = 'machine' ORDER BY seq, region")
    assert [r[:4] for r in rows] == [
        (1, "eu-central", "stored", first), (1, "us-east", "stored", first),
        (2, "eu-central", "stored", new), (2, "us-east", "stored", new),
    ]
    assert "reworded by the compliance team" not in rows[1][4] and "reworded by the compliance team" in rows[3][4]
    sources = query(control, "SELECT source, outcome FROM policy_activations ORDER BY id")
    assert sources == [("startup", "accepted"), ("file", "accepted")]
