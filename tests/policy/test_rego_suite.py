"""The policy's tests (*_test.rego: Rego unit tests and decision cases), each as one pytest case, plus checks
of the runner itself: a changed fact fails only the cases about it, with the expected and obtained decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policy import DEFAULT_POLICY_DIR, Flow, rego_tests
from policy.engine import EmbeddedPolicyEngine

RESULTS = {r.test.id: r for r in rego_tests.run(DEFAULT_POLICY_DIR)}


@pytest.mark.parametrize("test_id", sorted(RESULTS))
def test_rego(test_id: str):
    result = RESULTS[test_id]
    assert result.passed, f"{test_id}: {result.detail}"


def test_suite_covers_every_jurisdiction_and_the_boundaries():
    names = {r.test.name for r in RESULTS.values()}
    cases = {n for n in names if n.startswith("case_")}
    assert len(cases) >= 200
    assert len(names - cases) >= 20  # the logic tests
    for prefix in (
        "eu",
        "uk",
        "ch",
        "us",
        "doj",
        "cn",
        "ru",
        "vn",
        "sg",
        "jp",
        "kr",
        "in",
        "id",
        "sa",
        "au",
        "br",
        "ca",
        "my",
        "th",
        "ph",
        "mx",
    ):
        assert any(n.startswith(f"case_{prefix}_") for n in cases), prefix
    # one case per jurisdiction and category (machine .. core), in matrix_test.rego
    for prefix in (
        "eu",
        "eea_efta",
        "uk",
        "ch",
        "us",
        "doj",
        "cn",
        "ru",
        "in",
        "vn",
        "sg",
        "jp",
        "kr",
        "br",
        "id",
        "sa",
        "au",
        "ca",
        "my",
        "th",
        "ph",
        "mx",
    ):
        for category in ("machine", "personal", "sensitive_personal", "important", "core"):
            assert f"case_{prefix}_matrix_{category}" in cases, (prefix, category)
    for boundary in (
        "case_cn_boundary_exactly_100000_is_art8",
        "case_cn_boundary_99999_with_one_sensitive_is_art8_not_exempt",
        "case_vn_boundary_999999_is_important",
        "case_vn_boundary_1000000_is_core",
        "case_vn_boundary_sensitive_exactly_10000_is_important",
        "case_doj_personal_below_bulk_threshold_allowed",
        "case_doj_sensitive_threshold_is_more_than_1000_1",
        "case_doj_sensitive_threshold_is_more_than_1000_2",
        "case_cn_boundary_exactly_1000000_is_art7",
        "case_cn_sensitive_exactly_10000_is_art7",
        "case_cn_sensitive_9999_is_art8",
        # the boundaries of the ASEAN and Mexican rules: whose safeguard counts where
        "case_th_personal_bcr_not_certified_by_the_pdpc_does_not_count",
        "case_th_personal_no_adequate_destination_listed",
        "case_my_personal_has_no_whitelist_any_more",
        "case_my_personal_other_countries_assessments_do_not_count",
        "case_ph_consent_alone_is_not_accepted",
        "case_mx_sensitive_group_exception_not_applied",
        "case_id_asean_mcc_is_not_confirmed_as_a_safeguard",
        "case_eu_asean_mcc_is_not_an_eu_transfer_tool",
    ):
        assert boundary in cases


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _failed(policy_dir: Path) -> dict[str, str]:
    return {r.test.id: r.detail for r in rego_tests.run(policy_dir) if not r.passed}


def test_changing_one_adequacy_entry_fails_only_the_case_about_it(policy_copy: Path):
    """The review found one adequacy edit breaking six tests in three files with 'undefined'."""
    _edit_json(
        policy_copy / "data" / "adequacy.json",
        lambda d: d["EU_ADEQ"].__setitem__(
            "entries", [e for e in d["EU_ADEQ"]["entries"] if not (isinstance(e, dict) and e["c"] == "GB")]
        ),
    )
    failed = _failed(policy_copy)
    assert list(failed) == ["rego/residency/eu_test.rego::case_eu_personal_to_uk_adequate_until_2031"]
    detail = next(iter(failed.values()))
    assert 'flow {"category": "personal", "destination": "GB", "origin": "DE"}' in detail
    assert "expected: allow=true" in detail
    assert 'obtained: allow=false localization="none" requires=["BCR+TIA", "SCC+TIA"]' in detail
    assert "reason: EU GDPR Art 45-47, 49" in detail


def test_changing_a_threshold_fails_only_the_boundary_case(policy_copy: Path):
    def move(d):
        d["CN"]["contract_individuals_min"] = d["CN"]["exempt_individuals_below"] = 100001

    _edit_json(policy_copy / "data" / "thresholds.json", move)
    assert list(_failed(policy_copy)) == ["rego/residency/cn_test.rego::case_cn_boundary_exactly_100000_is_art8"]


def test_changing_a_group_fails_only_cases_about_that_member(policy_copy: Path):
    _edit_json(policy_copy / "data" / "groups.json", lambda d: d["EEA_EFTA"].remove("NO"))
    failed = _failed(policy_copy)
    assert failed
    assert all("eea_efta" in tid or "_no_" in tid or "intra_eea" in tid for tid in failed), list(failed)
    assert not [tid for tid in failed if "::test_" in tid]  # the logic tests run on fixture data


def test_logic_tests_ignore_the_facts_of_data(policy_copy: Path):
    """Every adequacy list emptied and every rule table but one removed: the logic tests still pass."""

    def empty_lists(data: dict[str, Any]) -> None:
        for value in data.values():
            if isinstance(value, dict) and "entries" in value:
                value["entries"] = []

    _edit_json(policy_copy / "data" / "adequacy.json", empty_lists)
    _edit_json(
        policy_copy / "data" / "regimes.json", lambda d: [d.pop(k) for k in list(d) if k not in ("_about", "US")]
    )
    results = rego_tests.run(policy_copy)
    logic = [r for r in results if not r.test.is_case]
    assert len(logic) >= 20 and all(r.passed for r in logic), [(r.test.id, r.detail) for r in logic if not r.passed]
    assert any(not r.passed for r in results if r.test.is_case)


def test_runner_reports_expected_and_obtained_for_a_failing_case(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "zz_test.rego").write_text(
        "package residency_test\n\n"
        'case_deliberately_wrong := {"flow": {"origin": "DE", "destination": "US", "category": "personal"},\n'
        '\t"expect": {"allow": true, "reasons_contain": ["no such text"]}}\n\n'
        'case_deliberately_right := {"flow": {"origin": "DE", "destination": "US", "category": "personal"},\n'
        '\t"expect": {"allow": false, "localization": "none"}}\n\n'
        'case_bad_key := {"flow": {"origin": "DE", "destination": "US", "category": "personal"},\n'
        '\t"expect": {"allowed": false}}\n\n'
        "test_deliberately_false if {\n\tfalse\n}\n"
    )
    results = {r.test.name: r for r in rego_tests.run(policy_copy)}
    wrong = results["case_deliberately_wrong"]
    assert not wrong.passed
    assert 'expected: allow=true reasons_contain=["no such text"]' in wrong.detail
    assert "obtained: allow=false" in wrong.detail
    assert "differs in: allow, reasons_contain 'no such text'" in wrong.detail
    assert results["case_deliberately_right"].passed
    assert "unknown expect key(s) ['allowed']" in results["case_bad_key"].detail
    assert results["test_deliberately_false"].detail == "undefined (a condition did not hold)"
    assert rego_tests.summary(list(results.values())).endswith("3 failed")


def test_runner_flags_duplicate_test_names(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "zz_test.rego").write_text(
        'package residency_test\n\ncase_eu_matrix_machine := {"flow": {}, "expect": {}}\n'
    )
    failed = [r for r in rego_tests.run(policy_copy) if not r.passed]
    assert failed and all("more than once" in r.detail for r in failed)


def test_unlisted_origin_is_denied_when_no_regime_is_marked_unlisted(policy_copy: Path):
    _edit_json(policy_copy / "data" / "regimes.json", lambda d: d.pop("UNLISTED"))
    d = EmbeddedPolicyEngine.from_dir(policy_copy).decide(Flow(origin="BD", destination="US", category="machine"))
    assert not d.allow
    assert d.reasons == ["No residency rule is modelled for origin BD; default deny"]
