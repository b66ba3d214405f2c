"""The Rego unit tests (*_test.rego), each as one pytest case, plus checks of the runner itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, rego_tests

RESULTS = {r.test.id: r for r in rego_tests.run(DEFAULT_POLICY_DIR)}


@pytest.mark.parametrize("test_id", sorted(RESULTS))
def test_rego(test_id: str):
    result = RESULTS[test_id]
    assert result.passed, f"{test_id}: {result.detail}"


def test_suite_covers_every_jurisdiction_and_the_china_boundaries():
    names = {r.test.name for r in RESULTS.values()}
    assert len(names) >= 100
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
    ):
        assert any(n.startswith(f"test_{prefix}_") for n in names), prefix
    # one test per jurisdiction pinning every category (machine .. core), in matrix_test.rego
    for prefix in ("eu", "eea_efta", "uk", "ch", "us", "doj", "cn", "ru", "in", "vn", "sg", "jp", "kr", "br", "id",
                   "sa", "au", "ca"):
        assert f"test_{prefix}_matrix_every_category" in names, prefix
    for boundary in (
        "test_cn_boundary_exactly_100000_is_art8",
        "test_cn_boundary_99999_with_one_sensitive_is_art8_not_exempt",
        "test_vn_boundary_999999_is_important_and_1000000_is_core",
        "test_vn_boundary_sensitive_exactly_10000_is_important",
        "test_doj_personal_below_bulk_threshold_allowed",
        "test_doj_sensitive_threshold_is_more_than_1000",
        "test_cn_boundary_exactly_1000000_is_art7",
        "test_cn_sensitive_exactly_10000_is_art7",
        "test_cn_sensitive_9999_is_art8",
    ):
        assert boundary in names


def test_runner_reports_failures(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "zz_test.rego").write_text(
        "package residency_test\n\nimport data.residency\n\n"
        "test_deliberately_wrong if {\n"
        '\tresidency.decide({"origin": "DE", "destination": "US", "category": "personal"}).allow\n}\n\n'
        "test_deliberately_right if {\n"
        '\tnot residency.decide({"origin": "DE", "destination": "US", "category": "personal"}).allow\n}\n'
    )
    results = {r.test.name: r for r in rego_tests.run(policy_copy)}
    assert not results["test_deliberately_wrong"].passed
    assert "undefined" in results["test_deliberately_wrong"].detail
    assert results["test_deliberately_right"].passed
    assert rego_tests.summary(list(results.values())).endswith("1 failed")


def test_runner_flags_duplicate_test_names(policy_copy: Path):
    (policy_copy / "rego" / "residency" / "zz_test.rego").write_text(
        "package residency_test\n\ntest_eu_machine_to_us_allowed if {\n\ttrue\n}\n"
    )
    failed = [r for r in rego_tests.run(policy_copy) if not r.passed]
    assert failed and all("more than once" in r.detail for r in failed)
