"""``python -m policy`` run as a subprocess, as a compliance officer or a script would."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, compute_revision

REPO = DEFAULT_POLICY_DIR.parent


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policy", *args], input=stdin, capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_decide_prints_the_contract_decision():
    proc = run(
        "decide",
        stdin=json.dumps({"origin": "CN", "destination": "DE", "category": "personal", "entity": {"ciio": True}}),
    )
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)
    assert list(decision) == ["allow", "localization", "requires", "transforms", "reasons", "policy_revision"]
    assert decision["allow"] is False
    assert decision["localization"] == "primary_in_country"
    assert decision["requires"] == ["CN_SECURITY_ASSESSMENT"]
    assert decision["policy_revision"] == compute_revision(DEFAULT_POLICY_DIR)
    assert proc.stderr == ""


def test_decide_unknown_country_is_a_decision_not_an_error():
    proc = run("decide", stdin='{"origin": "QQ", "destination": "DE", "category": "machine"}')
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["allow"] is False
    assert "unknown origin country code QQ" in decision["reasons"][0]


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ("not json", "input is not JSON"),
        ("", "no input"),
        ('["DE"]', "must be a JSON object"),
        ('{"origin": "DE", "category": "machine"}', "destination is required"),
        ('{"destination": "DE", "category": "machine"}', "origin is required"),
        ('{"origin": "DE", "destination": "US"}', "category is required"),
        ('{"origin": "DE", "destination": ["US"], "category": "machine"}', "destination"),
        (
            '{"origin": "DE", "destination": "US", "category": "machine", "volume": {"individuals_ytd": "9"}}',
            "volume.individuals_ytd",
        ),
    ],
)
def test_decide_unusable_input_exits_2_with_one_line(stdin, expected):
    proc = run("decide", stdin=stdin)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_revision_command():
    proc = run("revision")
    assert proc.returncode == 0
    assert proc.stdout.strip() == compute_revision(DEFAULT_POLICY_DIR)


def test_test_command_passes_on_the_shipped_policy():
    proc = run("test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    passed, failed = (int(x.split()[0]) for x in last.split(", "))
    assert passed >= 100 and failed == 0


def test_test_command_fails_on_a_failing_rego_test(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "zz_test.rego").write_text(
        "package residency_test\n\nimport data.residency\n\n"
        "test_wrong if {\n"
        '\tresidency.decide({"origin": "DE", "destination": "US", "category": "personal"}).allow\n}\n'
    )
    proc = run("test", "--policy-dir", str(policy_copy))
    assert proc.returncode == 1
    assert "FAIL rego/residency/zz_test.rego::test_wrong" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].endswith("passed, 1 failed")


def test_decide_with_a_broken_policy_exits_1_naming_the_file(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "broken.rego").write_text("package residency\n\nx := {a | \n")
    proc = run(
        "decide", "--policy-dir", str(policy_copy), stdin='{"origin": "DE", "destination": "US", "category": "machine"}'
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "rego/residency/broken.rego" in proc.stderr


def test_bundle_command_writes_an_opa_bundle(tmp_path: Path):
    out = tmp_path / "bundle.tar.gz"
    proc = run("bundle", str(out))
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        manifest_file, meta_file = tar.extractfile(".manifest"), tar.extractfile("residency_meta/data.json")
        assert manifest_file is not None and meta_file is not None  # regular files, not directories
        manifest, meta = json.load(manifest_file), json.load(meta_file)
    revision = compute_revision(DEFAULT_POLICY_DIR)
    assert manifest["revision"] == meta["revision"] == revision
    assert "residency_data/adequacy/data.json" in names
    assert "rego/residency/decision.rego" in names
    assert not any(n.endswith("_test.rego") for n in names)


def test_processing_says_where_a_raw_payload_may_be_processed() -> None:
    """Residency cells: a CIIO's raw payload may not be processed outside China (docs/cells.md)."""
    request = {
        "origin": "CN",
        "processing_country": "DE",
        "categories": ["machine", "personal"],
        "entity": {"ciio": True},
    }
    done = run("processing", stdin=json.dumps(request))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["allow"] is False and answer["categories"]["machine"]["allow"] is True
    assert "must be collected in CN first" in answer["reasons"][0]
    assert json.loads(run("processing", stdin=json.dumps({**request, "processing_country": "CN"})).stdout)["allow"]
    bad = run("processing", stdin="{}")
    assert bad.returncode == 2 and "processing_country" in bad.stderr
