"""Drafts and API activation (ingest.policy_runtime.drafts): uploads, activation by revision or draft id,
the platform's invariants, the policy directory again, and other replicas following. Real PostgreSQL and
policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.policy_runtime import (
    ActivationRefused,
    DraftNotFoundError,
)
from policy import Flow, compute_revision
from policy.bundle import files_digest, read_policy_dir
from tests.ingest.policy_runtime.policies import (
    DE_TO_GB,
    activations,
    copy_policy,
    drop_uk_adequacy,
    make_runtime,
)
from tests.policy.permissive import write_allow_all


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
        assert check == {
            "revision": revision,
            "draft_id": files_digest(read_policy_dir(draft)),
            "files": check["files"],
            "bytes": check["bytes"],
            "tests": check["tests"],
            "loads": True,
            "tests_passed": check["tests_passed"],
            "tests_failed": 0,
            "invariants_failed": [],
            "error": None,
        }
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
        assert not runtime.active.decide(
            Flow(origin="CN", destination="US", category="personal", entity={"ciio": True})
        ).allow
        assert runtime.status()["last_refused"].error == refused.value.error
    finally:
        runtime.stop()
    row = activations(control)[-1]
    assert (row["source"], row["outcome"], row["activated_by"]) == ("api", "refused", "mallory")
    assert "cn-ciio-personal-stays-in-cn" in row["error"]


def test_activation_by_draft_id_and_an_untested_draft_never_shadows_a_tested_one(
    control: str, policy_dir: Path, tmp_path: Path
):
    runtime = make_runtime(control, policy_dir)
    runtime.start()
    try:
        tested_dir = copy_policy(tmp_path / "tested")
        drop_uk_adequacy(tested_dir, fix_tests=True)
        tested = runtime.upload_draft(read_policy_dir(tested_dir), "alice")
        untested_files = {
            name: content for name, content in read_policy_dir(tested_dir).items() if not name.endswith("_test.rego")
        }
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
    rows = [
        (r["replica"], r["revision"] == file_revision, r["draft_id"])
        for r in activations(control)
        if r["source"] == "api" and r["outcome"] == "accepted"
    ]
    assert ("ingest-a", True, None) in rows and ("ingest-b", True, None) in rows
