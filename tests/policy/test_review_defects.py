"""The six defects an independent review found by running the policy under OPA next to regopy.

Each test failed before its fix (the commit that added it says so) and runs under both engines: the
embedded one (rego-cpp) and OPA's own Go engine (``real_opa``), which is what production's OPA servers run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from policy import (
    DEFAULT_POLICY_DIR,
    EmbeddedPolicyEngine,
    Flow,
    PolicyEvaluationError,
    PolicyInputError,
)
from tests.policy.real_opa import RealOpaEngine

REPO = DEFAULT_POLICY_DIR.parent


def decide_cli(flow: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policy", "decide"],
        input=json.dumps(flow),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


# --- 1. two satisfied alternatives ----------------------------------------------------------------------

TWO_ALTERNATIVES = [
    {"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC", "BCR", "TIA"]},
    {"origin": "SG", "destination": "US", "category": "personal", "safeguards": ["SCC", "CONSENT"]},
]


@pytest.mark.parametrize("flow", TWO_ALTERNATIVES, ids=["DE-US SCC+BCR+TIA", "SG-US SCC+CONSENT"])
def test_two_satisfied_alternatives_give_one_decision(both_engines, flow):
    decision = both_engines.decide(Flow.parse(flow))
    assert decision.allow is True
    assert decision.requires == []
    assert " and " in decision.reasons[0]  # every alternative in force is named, in data order


@pytest.mark.parametrize("flow", TWO_ALTERNATIVES, ids=["DE-US", "SG-US"])
def test_two_satisfied_alternatives_decide_on_the_command_line(flow):
    proc = decide_cli(flow)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["allow"] is True


def test_every_rule_with_several_alternatives_decides_when_all_hold(both_engines):
    """Every table rule of every regime, with every code of every alternative in force, decides (allowed)."""
    regimes = json.loads((DEFAULT_POLICY_DIR / "data" / "regimes.json").read_text())
    checked = 0
    for rid, regime in regimes.items():
        if rid.startswith("_") or regime.get("unlisted") or not regime["members"]:
            continue
        origin = next(m for m in regime["members"] if not m.startswith("group:")) if rid != "EU" else "DE"
        for category, rule in regime["categories"].items():
            alternatives = rule.get("alternatives", [])
            if len(alternatives) < 2:
                continue
            codes = sorted({c for alt in alternatives for c in alt})
            destination = "IN" if origin != "IN" else "US"
            decision = both_engines.decide(
                Flow(origin=origin, destination=destination, category=category, safeguards=codes)
            )
            assert decision.allow, (rid, category, decision.reasons)
            checked += 1
    assert checked >= 16  # EU, UK, CH, SG, JP, ID, AU, BR... x personal, sensitive_personal


def test_a_policy_that_cannot_decide_raises_policy_evaluation_error_in_both_engines(policy_copy: Path):
    """A deterministic failure for one input (here a function with two outputs) is PolicyEvaluationError,
    never PolicyUnavailableError (which means OPA is unreachable): the ingest quarantines the message."""
    (policy_copy / "rego" / "residency" / "zz_conflict.rego").write_text(
        'package residency\n\n_zz(x) := 1 if x.origin == "SG"\n\n_zz(x) := 2 if x.origin == "SG"\n\n'
        '_zz(x) := 3 if x.origin != "SG"\n\nzz_conflict := _zz(input)\n'
    )
    decision_rego = policy_copy / "rego" / "residency" / "decision.rego"
    decision_rego.write_text(
        decision_rego.read_text().replace(
            "decision := decide(input)", "decision := d if {\n\tzz_conflict\n\td := decide(input)\n}"
        )
    )
    flow = Flow(origin="SG", destination="US", category="machine")
    embedded = EmbeddedPolicyEngine.from_dir(policy_copy)  # loads: its smoke flow (DE -> FR) decides
    opa = RealOpaEngine(policy_copy)
    with pytest.raises(PolicyEvaluationError, match="rego-cpp gives no detail"):
        embedded.decide(flow)
    with pytest.raises(PolicyEvaluationError, match="eval_conflict_error"):
        opa.decide(flow)
    assert embedded.decide(Flow(origin="DE", destination="US", category="machine")).allow  # other input: fine
    opa.close()


# --- 2. numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2**63, 2**64 + 1, 10**18, 10_000_000_001])
def test_counters_beyond_the_bound_are_refused_before_any_engine(n):
    flow = {"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_ytd": n}}
    with pytest.raises(PolicyInputError, match=r"volume\.individuals_ytd"):
        Flow.parse(flow)
    proc = decide_cli(flow)
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing but JSON, and here nothing, on stdout
    assert "volume.individuals_ytd" in proc.stderr


@pytest.mark.parametrize("n", [2**63, 10**18])
def test_counters_beyond_the_bound_are_denied_by_the_policy_itself(both_engines, n):
    """An OPA REST caller can send any JSON: the policy denies, it never drops the overlay (allowed before)."""
    raw = {"origin": "US", "destination": "CN", "category": "personal", "volume": {"individuals_ytd": n}}
    decision = both_engines.evaluate(raw)
    assert decision["allow"] is False
    assert decision["reasons"] == [
        "Input rejected: volume.individuals_ytd is not a whole number from 0 to 10000000000; default deny"
    ]


def test_vn_core_flow_keeps_its_class_with_large_counts(both_engines):
    d = both_engines.decide(
        Flow(
            origin="VN",
            destination="SG",
            category="personal",
            safeguards=["VN_TIA_FILED"],
            volume={"individuals_12m": 5_000_000_000},
        )
    )
    assert not d.allow and d.localization == "in_country_only"
    assert any("data of 5000000000 citizens" in r and "classified core" in r for r in d.reasons)


@pytest.mark.parametrize("n", [2**31 + 5, 5_000_000_000, 10_000_000_000])
def test_numbers_above_2_to_the_31_print_exactly_in_reasons(both_engines, n):
    d = both_engines.decide(Flow(origin="CN", destination="DE", category="personal", volume={"individuals_ytd": n}))
    assert f"{n} individuals" in d.reasons[0], d.reasons[0]
    doj = both_engines.decide(Flow(origin="US", destination="CN", category="personal", volume={"individuals_12m": n}))
    assert f"{n} US persons" in doj.reasons[1], doj.reasons


def test_max_compares_numbers_as_numbers_in_both_engines(both_engines):
    """rego-cpp's max() compares numbers as text (max([9999, 10000]) == 9999): the 12-month count of 10,000
    must win over a year-to-date count of 9,999 in both engines."""
    d = both_engines.decide(
        Flow(
            origin="US",
            destination="CN",
            category="personal",
            volume={"individuals_ytd": 9999, "individuals_12m": 10000},
        )
    )
    assert "10000 US persons" in d.reasons[1]


# --- 3. Unicode whitespace and code formats ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "field"),
    [
        (
            {"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "QC\u00a0"}},
            "entity.subdivision",
        ),
        (
            {
                "origin": "US",
                "destination": "CN",
                "category": "personal",
                "subject": {"citizenship": "US\u00a0"},
                "volume": {"individuals_ytd": 200000},
            },
            "subject.citizenship",
        ),
        ({"origin": "DE\u00a0", "destination": "US", "category": "machine"}, "origin"),
        ({"origin": "\u017fg", "destination": "US", "category": "machine"}, "origin"),
        ({"origin": "DE", "destination": "US\t", "category": "machine"}, "destination"),
        ({"origin": "CA", "destination": "US", "category": "personal", "entity": {"subdivision": "US-QC"}}, "entity"),
    ],
)
def test_codes_with_other_characters_are_refused_with_the_field(both_engines, flow, field):
    with pytest.raises(PolicyInputError, match=field):
        Flow.parse(flow)
    decision = both_engines.evaluate(flow)  # what an OPA REST caller gets
    assert decision["allow"] is False
    assert any(r.startswith(f"Input rejected: {field}") or f"{field} " in r for r in decision["reasons"]), decision[
        "reasons"
    ]


def test_quebec_rule_applies_to_a_valid_quebec_code(both_engines):
    for sub in ("QC", "CA-QC", " qc "):
        d = both_engines.decide(Flow(origin="CA", destination="US", category="personal", entity={"subdivision": sub}))
        assert not d.allow and "Quebec" in d.reasons[0], sub


def test_unknown_canadian_subdivision_is_denied(both_engines):
    d = both_engines.decide(Flow(origin="CA", destination="US", category="personal", entity={"subdivision": "XX"}))
    assert not d.allow
    assert d.reasons == ["Input rejected: unknown entity.subdivision XX of CA (ISO 3166-2:CA); default deny"]


# --- 4. missing fields under OPA semantics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "missing"),
    [
        ({}, ["category", "destination", "origin"]),
        ({"origin": "DE", "category": "machine"}, ["destination"]),
        ({"destination": "US", "category": "machine"}, ["origin"]),
        ({"origin": "DE", "destination": "US"}, ["category"]),
    ],
)
def test_missing_fields_are_denied_by_both_engines(both_engines, raw, missing):
    decision = both_engines.evaluate(raw)
    assert decision["allow"] is False
    assert decision["reasons"] == [f"Input rejected: {key} is missing or not a string; default deny" for key in missing]
