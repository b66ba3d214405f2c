"""The embedded engine: demo cases the ingest relies on, revision, loading errors, contract."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from policy import (
    DEFAULT_POLICY_DIR,
    CachedPolicyEngine,
    Decision,
    EmbeddedPolicyEngine,
    Flow,
    PolicyEngine,
    PolicyEvaluationError,
    PolicyInputError,
    PolicyLoadError,
    compute_revision,
)

VOCABULARY = json.loads((DEFAULT_POLICY_DIR / "data" / "vocabulary.json").read_text())
SAFEGUARD_CODES = set(VOCABULARY["safeguards"])


def decide(engine: EmbeddedPolicyEngine, **fields) -> Decision:
    return engine.decide(Flow(**fields))


# --- demo cases the ingest relies on -------------------------------------------------------------


def test_de_machine_to_us_allowed(engine):
    d = decide(engine, origin="DE", destination="US", category="machine")
    assert d.allow and d.localization == "none" and d.requires == []


def test_de_personal_to_us_denied_unless_dpf_or_scc_tia_or_bcr_tia(engine):
    denied = decide(engine, origin="DE", destination="US", category="personal")
    assert not denied.allow
    assert denied.requires == ["BCR+TIA", "SCC+TIA"]
    assert decide(engine, origin="DE", destination="US", category="personal", recipient={"dpf_certified": True}).allow
    assert decide(engine, origin="DE", destination="US", category="personal", safeguards=["SCC", "TIA"]).allow
    assert decide(engine, origin="DE", destination="US", category="personal", safeguards=["BCR", "TIA"]).allow
    assert not decide(engine, origin="DE", destination="US", category="personal", safeguards=["SCC"]).allow


@pytest.mark.parametrize("origin", ["DE", "FR"])
def test_eu_personal_to_de_allowed(engine, origin):
    assert decide(engine, origin=origin, destination="DE", category="personal").allow


@pytest.mark.parametrize("destination", ["US", "DE"])
def test_cn_machine_allowed_under_cac_art3(engine, destination):
    d = decide(engine, origin="CN", destination=destination, category="machine")
    assert d.allow
    assert "Art 3" in d.reasons[0]


@pytest.mark.parametrize("destination", ["DE", "US", "SG"])
def test_cn_ciio_personal_denied_primary_in_country(engine, destination):
    d = decide(engine, origin="CN", destination=destination, category="personal", entity={"ciio": True})
    assert not d.allow
    assert d.localization == "primary_in_country"
    assert d.requires == ["CN_SECURITY_ASSESSMENT"]
    assert any("PIPL Art 40" in r and "CAC 2024 Provisions Art 7" in r for r in d.reasons)


def test_us_personal_to_de_allowed(engine):
    assert decide(engine, origin="US", destination="DE", category="personal").allow


def test_vn_personal_to_sg_only_with_tia_filed(engine):
    denied = decide(engine, origin="VN", destination="SG", category="personal")
    assert not denied.allow and denied.requires == ["VN_TIA_FILED"]
    assert decide(engine, origin="VN", destination="SG", category="personal", safeguards=["VN_TIA_FILED"]).allow


def test_sg_personal_to_us_needs_consent_contract_bcr_or_cbpr(engine):
    denied = decide(engine, origin="SG", destination="US", category="personal")
    assert not denied.allow
    assert set(denied.requires) == {"CONSENT", "SCC", "BCR", "ASEAN_MCC"}
    for code in ("CONSENT", "SCC", "BCR", "ASEAN_MCC"):
        assert decide(engine, origin="SG", destination="US", category="personal", safeguards=[code]).allow
    assert decide(engine, origin="SG", destination="US", category="personal", recipient={"cbpr_certified": True}).allow


@pytest.mark.parametrize("country", ["DE", "US", "CN", "RU", "VN", "SG", "IN", "BR", "MX", "MY", "TH", "PH"])
@pytest.mark.parametrize("category", ["machine", "personal", "sensitive_personal", "important", "core"])
def test_domestic_flows_allowed(engine, country, category):
    d = decide(engine, origin=country, destination=country, category=category)
    assert d.allow, d.reasons
    assert d.requires == []


# --- contract ---------------------------------------------------------------------------------------


def test_unknown_country_and_category_are_denied_not_errors(engine):
    d = decide(engine, origin="XX", destination="DE", category="telemetry")
    assert not d.allow
    assert any("unknown origin country code XX" in r for r in d.reasons)
    assert any("unknown category telemetry" in r for r in d.reasons)


def test_every_requires_entry_uses_the_safeguard_vocabulary(engine):
    flows = [
        Flow(origin=o, destination=d, category=c)
        for o in (
            "DE",
            "GB",
            "CH",
            "CN",
            "RU",
            "VN",
            "SG",
            "JP",
            "KR",
            "BR",
            "ID",
            "SA",
            "AU",
            "CA",
            "IN",
            "US",
            "MY",
            "TH",
            "PH",
            "MX",
        )
        for d in ("US", "CN", "DE", "SG")
        for c in ("personal", "sensitive_personal", "important", "core")
        if o != d
    ]
    decisions = engine.decide_many(flows)
    assert len(decisions) == len(flows)
    seen = set()
    for flow, d in zip(flows, decisions, strict=True):
        assert d.reasons, flow
        for alternative in d.requires:
            codes = alternative.split("+")
            assert set(codes) <= SAFEGUARD_CODES, (flow, alternative)
            seen |= set(codes)
        if d.allow:
            assert d.requires == []
    assert (
        {
            "SCC",
            "BCR",
            "TIA",
            "UK_IDTA",
            "CONSENT",
            "CN_STANDARD_CONTRACT",
            "CN_CERTIFICATION",
            "CN_SECURITY_ASSESSMENT",
            "RU_RKN_NOTIFIED",
            "VN_TIA_FILED",
            "STATE_APPROVAL",
            "ASEAN_MCC",
            "MY_TIA",
            "TH_PDPC_BCR",
        }
        == seen
        == SAFEGUARD_CODES
    )


def test_the_safeguard_codes_are_the_same_in_the_policy_the_registry_and_the_invariants():
    """vocabulary.json is the contract; ingest.registry.Safeguard (what a site may list) and
    policy.invariants.SAFEGUARDS (what every_safeguard_but expands to) must name exactly its codes."""
    from typing import get_args

    from ingest.registry import Safeguard
    from policy.invariants import SAFEGUARDS

    assert list(get_args(Safeguard)) == list(VOCABULARY["safeguards"]) == list(SAFEGUARDS)


def test_every_reason_cites_a_law(engine):
    d = decide(engine, origin="CN", destination="US", category="personal", volume={"individuals_ytd": 100000})
    assert re.search(r"CN PIPL Art 38; CAC 2024 Provisions Art 8", d.reasons[0])


def test_decision_carries_the_engine_revision(engine):
    d = decide(engine, origin="DE", destination="US", category="machine")
    assert d.policy_revision == engine.revision == compute_revision(DEFAULT_POLICY_DIR)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", engine.revision)


def test_engine_satisfies_protocol(engine):
    assert isinstance(engine, PolicyEngine)


def test_default_only_rule_is_undefined_alone_but_decision_is_complete(engine):
    """rego-cpp answers undefined for a rule that only takes its default when queried alone."""
    denied = {"origin": "DE", "destination": "US", "category": "personal"}
    assert engine.query("data.residency.allow", denied) is None
    assert engine.query("data.residency.allow", {**denied, "category": "machine"}) is True
    document = engine.query("data.residency.decision", denied)
    assert document is not None and document["allow"] is False
    assert set(document) == {"allow", "localization", "requires", "transforms", "reasons", "policy_revision"}


def test_evaluate_any_json_never_crashes(engine):
    value: object
    for value in (
        None,
        [],
        "DE",
        5,
        {"origin": 5},
        {"origin": "DE", "destination": "US", "category": "machine", "volume": {"individuals_ytd": -1}},
    ):
        result = engine.evaluate(value)
        assert result["allow"] is False
        assert result["reasons"][0].startswith("Input rejected")


def test_concurrent_decisions_are_consistent(engine):
    flows = [
        Flow(origin="CN", destination="DE", category="personal", volume={"individuals_ytd": n})
        for n in (1, 100000, 1000000) * 8
    ]
    with ThreadPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(engine.decide, flows))
    expected = {1: ["TIA"], 100000: ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"], 1000000: ["CN_SECURITY_ASSESSMENT"]}
    for flow, d in zip(flows, decisions, strict=True):
        assert d.requires == expected[flow.volume.individuals_ytd]


# --- Flow -------------------------------------------------------------------------------------------


def test_flow_defaults_and_normalisation():
    flow = Flow.parse({"origin": " de", "destination": "us", "category": "personal"})
    assert (flow.origin, flow.destination) == ("DE", "US")
    assert flow.safeguards == () and flow.recipient.dpf_certified is False and flow.entity.ciio is False
    assert flow.subject.citizenship is None and flow.volume.individuals_ytd == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"origin": "DE", "category": "machine"}, "destination is required"),
        ({"origin": "DE", "destination": 7, "category": "machine"}, "destination"),
        ({"origin": "DE", "destination": "US", "category": "machine", "volume": {"individuals_ytd": -3}}, "volume"),
        (
            {"origin": "DE", "destination": "US", "category": "machine", "recipient": {"dpf_certified": "yes"}},
            "recipient",
        ),
        (
            {"origin": "DE", "destination": "US", "category": "machine", "transforms_applied": ["encrypted"]},
            "transforms_applied",
        ),
        (["DE"], "JSON object"),
    ],
)
def test_flow_rejects_unusable_input(value, message):
    with pytest.raises(PolicyInputError, match=message):
        Flow.parse(value)


def test_flow_parse_json_rejects_non_json():
    with pytest.raises(PolicyInputError, match="not JSON"):
        Flow.parse_json("{origin")


def test_cache_key_is_canonical_and_complete():
    a = Flow(origin="de", destination="US", category="personal", safeguards=["TIA", "SCC"])
    b = Flow(
        origin="DE",
        destination="US",
        category="personal",
        safeguards=["SCC", "TIA", "SCC"],
        recipient={"dpf_certified": False},
        unrelated_top_level_key=True,
    )
    assert a.cache_key() == b.cache_key()
    variants = [
        Flow(origin="DE", destination="US", category="personal", safeguards=["SCC"]),
        Flow(origin="DE", destination="US", category="personal", safeguards=["SCC", "TIA"], purpose="hr_management"),
        Flow(
            origin="DE", destination="US", category="personal", safeguards=["SCC", "TIA"], entity={"subdivision": "QC"}
        ),
        Flow(
            origin="DE", destination="US", category="personal", safeguards=["SCC", "TIA"], subject={"citizenship": "RU"}
        ),
        Flow(
            origin="DE", destination="US", category="personal", safeguards=["SCC", "TIA"], volume={"individuals_ytd": 1}
        ),
        Flow(
            origin="DE",
            destination="US",
            category="personal",
            safeguards=["SCC", "TIA"],
            transforms_applied=["anonymized"],
        ),
        Flow(
            origin="DE",
            destination="US",
            category="personal",
            safeguards=["SCC", "TIA"],
            recipient={"swiss_dpf_certified": True},
        ),
    ]
    keys = {v.cache_key() for v in variants} | {a.cache_key()}
    assert len(keys) == len(variants) + 1


def test_cache_key_covers_a_flag_that_only_the_data_names(policy_copy: Path):
    """A compliance officer adds a recipient flag in the data (no code change): the cache must tell
    flows with and without it apart, since the key is built from the whole policy input."""
    vocabulary = policy_copy / "data" / "vocabulary.json"
    vocab = json.loads(vocabulary.read_text())
    vocab["recipient_flags"].append("tisax_certified")
    vocabulary.write_text(json.dumps(vocab))
    regimes = policy_copy / "data" / "regimes.json"
    data = json.loads(regimes.read_text())
    data["SG"]["categories"]["personal"]["recipient_flags"].append("tisax_certified")
    regimes.write_text(json.dumps(data))
    cached = CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(policy_copy), maxsize=8)
    plain = Flow(origin="SG", destination="US", category="personal")
    flagged = Flow(origin="SG", destination="US", category="personal", recipient={"tisax_certified": True})
    assert plain.cache_key() != flagged.cache_key()
    assert not cached.decide(plain).allow
    assert cached.decide(flagged).allow
    assert any("recipient.tisax_certified is true" in r for r in cached.decide(flagged).reasons)


# --- loading and revision ---------------------------------------------------------------------------


def test_revision_changes_with_data_not_with_tests(policy_copy: Path):
    before = compute_revision(policy_copy)
    test_file = policy_copy / "rego" / "residency" / "decision_test.rego"
    test_file.write_text(test_file.read_text() + "\n# a comment\n")
    assert compute_revision(policy_copy) == before
    adequacy = policy_copy / "data" / "adequacy.json"
    adequacy.write_text(adequacy.read_text().replace('"2031-12-27"', '"2031-12-28"'))
    assert compute_revision(policy_copy) != before


def test_compliance_officer_edits_data_not_logic(policy_copy: Path):
    """Removing the renewed UK adequacy decision from the data denies DE -> GB personal data."""
    flow = Flow(origin="DE", destination="GB", category="personal")
    assert EmbeddedPolicyEngine.from_dir(policy_copy).decide(flow).allow
    path = policy_copy / "data" / "adequacy.json"
    data = json.loads(path.read_text())
    data["EU_ADEQ"]["entries"] = [e for e in data["EU_ADEQ"]["entries"] if not (isinstance(e, dict) and e["c"] == "GB")]
    path.write_text(json.dumps(data))
    edited = EmbeddedPolicyEngine.from_dir(policy_copy).decide(flow)
    assert not edited.allow
    assert edited.requires == ["BCR+TIA", "SCC+TIA"]


def test_cn_consent_gate_is_a_data_switch(policy_copy: Path):
    path = policy_copy / "data" / "thresholds.json"
    data = json.loads(path.read_text())
    data["CN"]["consent_gate"] = True
    path.write_text(json.dumps(data))
    engine = EmbeddedPolicyEngine.from_dir(policy_copy)
    ciio = engine.decide(Flow(origin="CN", destination="DE", category="personal", entity={"ciio": True}))
    assert ciio.requires == ["CN_SECURITY_ASSESSMENT+CONSENT"]
    hr = engine.decide(Flow(origin="CN", destination="DE", category="personal", purpose="hr_management"))
    assert hr.requires == ["TIA"]


def test_broken_rego_names_the_file(policy_copy: Path):
    bad = policy_copy / "rego" / "residency" / "broken.rego"
    bad.write_text("package residency\n\n_oops := {a | \n")
    with pytest.raises(PolicyLoadError, match=r"rego/residency/broken\.rego"):
        EmbeddedPolicyEngine.from_dir(policy_copy)


def test_broken_json_names_the_file(policy_copy: Path):
    (policy_copy / "data" / "groups.json").write_text("{not json")
    with pytest.raises(PolicyLoadError, match=r"data/groups\.json"):
        EmbeddedPolicyEngine.from_dir(policy_copy)


def test_missing_decision_document_is_a_load_error(policy_copy: Path):
    path = policy_copy / "rego" / "residency" / "decision.rego"
    path.write_text(path.read_text().replace("decision := decide(input)", "decision_renamed := decide(input)"))
    with pytest.raises(PolicyLoadError, match="decision"):
        EmbeddedPolicyEngine.from_dir(policy_copy)


def test_malformed_decision_is_an_evaluation_error(policy_copy: Path):
    path = policy_copy / "rego" / "residency" / "decision.rego"
    source = path.read_text().replace('"localization": _localization(fs),', '"localization": 7,')
    path.write_text(source)
    engine = EmbeddedPolicyEngine.from_dir(policy_copy)
    with pytest.raises(PolicyEvaluationError, match="contract"):
        engine.decide(Flow(origin="DE", destination="US", category="machine"))


def test_missing_policy_dir_is_a_load_error(tmp_path: Path):
    with pytest.raises(PolicyLoadError, match="rego"):
        EmbeddedPolicyEngine.from_dir(tmp_path)


# --- data integrity ---------------------------------------------------------------------------------


def _load(name: str):
    return json.loads((DEFAULT_POLICY_DIR / "data" / f"{name}.json").read_text())


def test_data_integrity():
    countries = set(_load("countries")["codes"])
    assert len(countries) == 249
    groups = {k: v for k, v in _load("groups").items() if not k.startswith("_")}
    for name, items in groups.items():
        for item in items:
            assert item[6:] in groups if item.startswith("group:") else item in countries, (name, item)
    regimes = {k: v for k, v in _load("regimes").items() if not k.startswith("_")}
    categories = set(VOCABULARY["categories"])
    for rid, regime in regimes.items():
        assert set(regime["categories"]) <= categories, rid
        for rule in [
            *regime["categories"].values(),
            *regime.get("entity_overrides", {}).values(),
            *regime.get("purpose_overrides", {}).values(),
        ]:
            assert "cite" in rule, rid
            for alternative in rule.get("alternatives", []):
                assert set(alternative) <= SAFEGUARD_CODES, (rid, alternative)
            for flag in rule.get("recipient_flags", []):
                assert flag in VOCABULARY["recipient_flags"], (rid, flag)

    def expand(items: list[str]) -> set[str]:
        out: set[str] = set()
        for item in items:
            if item.startswith("group:"):
                out |= expand(groups[item[6:]])
            else:
                out.add(item)
        return out

    owner: dict[str, str] = {}
    for rid, regime in regimes.items():
        for code in expand(regime["members"]):
            assert code not in owner, f"{code} governed by both {owner[code]} and {rid}"
            owner[code] = rid
    adequacy = _load("adequacy")
    for name, lst in adequacy.items():
        if name.startswith("_"):
            continue
        for entry in lst["entries"]:
            code = entry if isinstance(entry, str) else entry["c"]
            assert code[6:] in groups if code.startswith("group:") else code in countries, (name, entry)
            if isinstance(entry, dict) and "requires_recipient" in entry:
                assert entry["requires_recipient"] in VOCABULARY["recipient_flags"]


def test_adequacy_expiry_is_a_data_field(policy_copy: Path):
    """``until`` is the last day of validity (UTC): valid through it, expired from the next day on."""
    import datetime as dt

    path = policy_copy / "data" / "adequacy.json"
    data = json.loads(path.read_text())
    today = dt.datetime.now(dt.UTC).date()
    flow = Flow(origin="DE", destination="GB", category="personal")
    for until, allowed in ((today, True), (today - dt.timedelta(days=1), False)):
        for entry in data["EU_ADEQ"]["entries"]:
            if isinstance(entry, dict) and entry["c"] == "GB":
                entry["until"] = until.isoformat()
        path.write_text(json.dumps(data))
        decision = EmbeddedPolicyEngine.from_dir(policy_copy).decide(flow)
        assert decision.allow is allowed, decision.reasons
        if not allowed:
            assert f"expired on {until.isoformat()}" in decision.reasons[0]


def test_russian_convention_108_adequacy_is_a_data_switch(policy_copy: Path):
    """RU_ADEQ.unconfirmed_entries holds the [U] Draft Law 951518-8: deleting it restores adequacy."""
    flow = Flow(origin="RU", destination="DE", category="personal", safeguards=["RU_RKN_NOTIFIED"])
    assert not EmbeddedPolicyEngine.from_dir(policy_copy).decide(flow).allow
    path = policy_copy / "data" / "adequacy.json"
    data = json.loads(path.read_text())
    del data["RU_ADEQ"]["unconfirmed_entries"]
    path.write_text(json.dumps(data))
    decision = EmbeddedPolicyEngine.from_dir(policy_copy).decide(flow)
    assert decision.allow and decision.localization == "primary_in_country"
    assert "DE is adequate (Convention 108 party" in decision.reasons[0]
