"""The platform's residency invariants (policy/invariants.yaml) against the real policy, a permissive draft and
a deny-all one; the file's validation; and `python -m policy invariants`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, invariants
from policy.errors import PolicyLoadError
from tests.policy.permissive import write_allow_all


@pytest.fixture(scope="module")
def shipped() -> invariants.InvariantSet:
    return invariants.load()


def test_the_real_policy_keeps_every_invariant(shipped: invariants.InvariantSet) -> None:
    assert len(shipped.invariants) >= 12 and len(shipped.flows()) >= 100
    assert invariants.check(EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR), shipped) == []


def test_an_allow_everything_policy_breaks_the_residency_invariants(
    shipped: invariants.InvariantSet, tmp_path: Path
) -> None:
    engine = EmbeddedPolicyEngine.from_dir(write_allow_all(tmp_path / "allow-all"))
    violations = invariants.check(engine, shipped)
    broken = {v.invariant.id for v in violations}
    assert {
        "cn-ciio-personal-stays-in-cn",
        "core-data-stays-in-cn-and-vn",
        "ru-personal-collected-in-russia-first",
        "eu-personal-to-non-adequate-needs-safeguard",
        "unknown-countries-denied",
    } <= broken
    assert "domestic-flows-allowed" not in broken and "eu-machine-data-to-us-allowed" not in broken
    text = invariants.summary(violations)
    assert text.startswith(f"breaks {len(broken)} platform invariant(s) [cn-ciio-personal-stays-in-cn, ")
    assert all(i in text for i in broken)
    assert "cn-ciio-personal-stays-in-cn (Personal data of a Chinese CIIO" in text
    assert "CN->US personal (entity=ciio:True): allowed, must be denied" in text and len(text) < 2000


def test_a_deny_everything_policy_breaks_the_allow_invariants_and_the_cures(
    shipped: invariants.InvariantSet, tmp_path: Path
) -> None:
    target = write_allow_all(tmp_path / "deny-all")
    rego = target / "rego" / "residency" / "decision.rego"
    rego.write_text(rego.read_text().replace('"allow": true', '"allow": false'))
    violations = invariants.check(EmbeddedPolicyEngine.from_dir(target), shipped)
    by_id = {v.invariant.id: v for v in violations}
    assert {"domestic-flows-allowed", "eu-machine-data-to-us-allowed", "cn-ciio-personal-stays-in-cn"} <= set(by_id)
    assert by_id["domestic-flows-allowed"].problem == "denied, must be allowed"
    assert by_id["cn-ciio-personal-stays-in-cn"].problem == (
        "denied with no safeguard that could cure it, must require CN_SECURITY_ASSESSMENT; "
        "localization none, must be at least primary_in_country"
    )
    assert "cn-ciio-personal-no-other-cure" not in by_id  # denying is what that one demands


def test_a_weaker_cure_is_named(shipped: invariants.InvariantSet, tmp_path: Path) -> None:
    """A data edit: a CIIO's personal data could leave China under the CAC standard contract."""
    draft = tmp_path / "draft"
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, draft / sub)
    source = (draft / "rego" / "residency" / "cn.rego").read_text()
    ciio_tier = (
        '"alternatives": [["CN_SECURITY_ASSESSMENT"]],\n\t"accepted": [["CN_SECURITY_ASSESSMENT"]],\n'
        '\t"reason": "CN PIPL Art 40; CSL Art 37'
    )
    weaker = source.replace(ciio_tier, ciio_tier.replace("CN_SECURITY_ASSESSMENT", "CN_STANDARD_CONTRACT"), 1)
    if weaker == source:
        pytest.fail("cn.rego changed: update this test's edit of the CIIO rule")
    (draft / "rego" / "residency" / "cn.rego").write_text(weaker)
    violations = invariants.check(EmbeddedPolicyEngine.from_dir(draft), shipped)
    assert {v.invariant.id for v in violations} == {"cn-ciio-personal-stays-in-cn", "cn-ciio-personal-no-other-cure"}
    assert any("requires CN_STANDARD_CONTRACT, must require CN_SECURITY_ASSESSMENT" in v.problem for v in violations)


def test_the_file_is_validated_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "invariants.yaml"
    bad.write_text(
        "invariants:\n  - id: x\n    title: t\n    basis: b\n    flows:\n      - origin: [DE]\n"
        "        destination: [US]\n        category: [personal]\n        safeguards: [SCC, NOPE]\n"
        "    expect: {outcome: deny}\n"
    )
    with pytest.raises(PolicyLoadError, match=r"invariants\.yaml:\d+: invariants\.0\.flows\.0: .*safeguard.*NOPE"):
        invariants.load(bad)
    bad.write_text(
        "invariants:\n  - id: x\n    title: t\n    basis: b\n    flows:\n      - origin: [DE]\n"
        "        category: [personal]\n    expect: {outcome: maybe}\n"
    )
    with pytest.raises(PolicyLoadError, match="destination"):
        invariants.load(bad)


def test_the_cli_checks_a_draft(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "policy", "invariants", "--policy-dir", str(DEFAULT_POLICY_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "flows of" in good.stdout and "0 broken" in good.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "policy",
            "invariants",
            "--policy-dir",
            str(write_allow_all(tmp_path / "allow-all")),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert "cn-ciio-personal-stays-in-cn" in report["broken"]
    assert report["violations"][0]["flow"]["origin"] == "CN"
