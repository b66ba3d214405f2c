"""The watcher and lifecycle (ingest.policy_runtime.watch): file changes, OPA bundle revisions (and the pause
while one breaks an invariant), and the running ingest picking up the new revision for the next message.
Real PostgreSQL, Mosquitto and policies."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from devstack import MosquittoServer
from ingest.policy_runtime import (
    ManagedByOpaError,
    PolicyRuntime,
)
from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, compute_revision
from policy.bundle import read_policy_dir
from policy.errors import PolicyUnavailableError
from policy.invariants import InvariantsBroken
from tests.ingest.policy_runtime.policies import (
    DE_TO_GB,
    DE_TO_US,
    activations,
    copy_policy,
    drop_uk_adequacy,
    make_runtime,
)
from tests.integration.ingest_harness import batch_payload, publisher, query, running_ingest, wait_until
from tests.policy.permissive import write_allow_all
from tests.policy.test_opa_client import FakeOpa
from wire import DataTopic


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
        ("startup", "accepted"),
        ("file", "refused"),
        ("file", "refused"),
        ("file", "accepted"),
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


def test_opa_mode_follows_the_bundle_revision_and_refuses_uploads(control: str):
    engine = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    with FakeOpa(engine, bundle_revision="sha256:" + "11" * 32) as fake:
        runtime = PolicyRuntime(
            kind="opa",
            policy_dir=DEFAULT_POLICY_DIR,
            control_dsn=control,
            replica="ingest-o",
            opa_url=fake.url,
            cache_size=16,
            watch_s=1,
        )
        runtime.start()
        try:
            assert runtime.active.revision == "sha256:" + "11" * 32
            runtime.active.decide(DE_TO_US)
            runtime.active.decide(DE_TO_US)
            stats = runtime.active.cache_stats()
            assert stats is not None and stats["hits"] == 1
            bundles_asked = fake.requests.count(("GET", "/v1/data/system/bundles"))
            runtime.active.decide(DE_TO_GB)
            assert fake.requests.count(("GET", "/v1/data/system/bundles")) == bundles_asked  # not on the hot path
            runtime.poll()
            stats = runtime.active.cache_stats()
            assert runtime.active.revision == "sha256:" + "11" * 32 and stats is not None and stats["size"] == 2
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
        ("startup", "1111", "startup"),
        ("opa", "2222", "opa-bundle"),
    ]


def test_an_opa_revision_that_breaks_an_invariant_pauses_routing_until_a_good_one(control: str, tmp_path: Path):
    good = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    with FakeOpa(good, bundle_revision="sha256:" + "11" * 32) as fake:
        runtime = PolicyRuntime(
            kind="opa",
            policy_dir=DEFAULT_POLICY_DIR,
            control_dsn=control,
            replica="ingest-o",
            opa_url=fake.url,
            cache_size=16,
            watch_s=0,
        )
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
        ("startup", "accepted", "1111"),
        ("opa", "refused", "3333"),
        ("opa", "accepted", "4444"),
    ]
    assert "cn-ciio-personal-stays-in-cn" in rows[1]["error"]


def test_stopping_releases_a_decision_waiting_on_a_paused_policy(control: str, tmp_path: Path):
    with FakeOpa(
        EmbeddedPolicyEngine.from_dir(write_allow_all(tmp_path / "allow-all")), bundle_revision="sha256:" + "55" * 32
    ) as fake:
        runtime = PolicyRuntime(
            kind="opa",
            policy_dir=DEFAULT_POLICY_DIR,
            control_dsn=control,
            replica="ingest-p",
            opa_url=fake.url,
            cache_size=16,
            watch_s=0,
        )
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
    rows = query(
        control,
        "SELECT seq, region, outcome, policy_revision, reasons->>0 FROM decisions"
        " WHERE category = 'machine' ORDER BY seq, region",
    )
    assert [r[:4] for r in rows] == [
        (1, "eu-central", "stored", first),
        (1, "us-east", "stored", first),
        (2, "eu-central", "stored", new),
        (2, "us-east", "stored", new),
    ]
    assert "reworded by the compliance team" not in rows[1][4] and "reworded by the compliance team" in rows[3][4]
    sources = query(control, "SELECT source, outcome FROM policy_activations ORDER BY id")
    assert sources == [("startup", "accepted"), ("file", "accepted")]
