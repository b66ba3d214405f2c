"""A safeguard that holds for a number of years (vocabulary.json ``safeguard_validity``; Malaysia's transfer impact
assessment, MY_TIA: three years, Guideline 3/2025) is in force only with its date (``safeguard_dates``) and only
until the day before that many years have passed, under both engines. The dates here move with the clock, which
the decision cases of my_test.rego cannot (they pin an undated and a long-lapsed assessment)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from policy import EmbeddedPolicyEngine, Flow, PolicyInputError

TODAY = dt.datetime.now(dt.UTC).date()
TOMORROW = TODAY + dt.timedelta(days=1)
# The dates (as the policy compares them: ISO strings) whose third anniversary is tomorrow (the last day in force
# is today) and today (lapsed today). Built from the month and day as text, like the policy's anniversary.
LAST_DAY_IN_FORCE = f"{TOMORROW.year - 3}-{TOMORROW:%m-%d}"
LAPSES_TODAY = f"{TODAY.year - 3}-{TODAY:%m-%d}"


def _my(**extra: Any) -> Flow:
    return Flow.model_validate({"origin": "MY", "destination": "SG", "category": "personal", **extra})


def test_a_dated_assessment_within_three_years_is_in_force(both_engines: Any) -> None:
    for day in (TODAY.isoformat(), (TODAY - dt.timedelta(days=365)).isoformat(), LAST_DAY_IN_FORCE):
        d = both_engines.decide(_my(safeguards=["MY_TIA"], safeguard_dates={"MY_TIA": day}))
        assert d.allow, (day, d.reasons)
        assert d.reasons == [next(r for r in d.reasons if "in force: MY_TIA; allowed" in r)]  # no lapse reason


def test_an_assessment_lapses_on_its_third_anniversary(both_engines: Any) -> None:
    d = both_engines.decide(_my(safeguards=["MY_TIA"], safeguard_dates={"MY_TIA": LAPSES_TODAY}))
    assert not d.allow
    assert "MY_TIA" in d.requires  # renewing it is a way in again
    assert f"MY_TIA of {LAPSES_TODAY} lapsed on {TODAY.isoformat()}" in d.reasons[-1]


def test_an_undated_assessment_is_not_in_force_and_a_date_alone_is_no_safeguard(both_engines: Any) -> None:
    assert not both_engines.decide(_my(safeguards=["MY_TIA"])).allow
    assert not both_engines.decide(_my(safeguard_dates={"MY_TIA": TODAY.isoformat()})).allow


def test_an_assessment_dated_after_today_is_not_in_force_yet(both_engines: Any) -> None:
    d = both_engines.decide(_my(safeguards=["MY_TIA"], safeguard_dates={"MY_TIA": TOMORROW.isoformat()}))
    assert not d.allow and "MY_TIA" in d.requires
    assert d.reasons[-1] == f"MY_TIA is dated {TOMORROW.isoformat()}, after today (UTC): not in force yet"


def test_codes_without_a_validity_ignore_dates(both_engines: Any) -> None:
    old = (TODAY - dt.timedelta(days=3650)).isoformat()
    assert both_engines.decide(_my(safeguards=["ASEAN_MCC"], safeguard_dates={"ASEAN_MCC": old})).allow


@pytest.mark.parametrize(
    ("dates", "problem"),
    [
        ({"MY_TIA": "2025-5-2"}, "safeguard_dates.MY_TIA is not a date (YYYY-MM-DD)"),
        ({"MY_TIA": 20250502}, "safeguard_dates.MY_TIA is not a date (YYYY-MM-DD)"),
        (
            {"my tia\u00a0": "2025-13-01"},
            "safeguard_dates.(a key that is no safeguard code) is not a date (YYYY-MM-DD)",
        ),
        ("2025-05-02", "safeguard_dates is not an object"),
    ],
)
def test_malformed_dates_are_refused_by_the_model_and_denied_by_both_engines(
    both_engines: Any, dates: Any, problem: str
) -> None:
    raw = {
        "origin": "MY",
        "destination": "SG",
        "category": "personal",
        "safeguards": ["MY_TIA"],
        "safeguard_dates": dates,
    }
    with pytest.raises(PolicyInputError):
        Flow.parse(raw)
    decision = both_engines.evaluate(raw)
    assert decision["allow"] is False
    assert decision["reasons"] == [f"Input rejected: {problem}; default deny"]


def test_the_validity_is_data(policy_copy: Path) -> None:
    """Removing MY_TIA's validity makes an undated one count; giving ASEAN_MCC one makes it need a date."""
    path = policy_copy / "data" / "vocabulary.json"
    vocab = json.loads(path.read_text())
    validity = vocab.pop("safeguard_validity")
    path.write_text(json.dumps(vocab))
    assert EmbeddedPolicyEngine.from_dir(policy_copy).decide(_my(safeguards=["MY_TIA"])).allow
    vocab["safeguard_validity"] = {**validity, "ASEAN_MCC": {"years": 1, "cite": "a test"}}
    path.write_text(json.dumps(vocab))
    engine = EmbeddedPolicyEngine.from_dir(policy_copy)
    year_ago = f"{TODAY.year - 1}-{TODAY:%m-%d}"
    d = engine.decide(_my(safeguards=["ASEAN_MCC"], safeguard_dates={"ASEAN_MCC": year_ago}))
    assert not d.allow and f"ASEAN_MCC of {year_ago} lapsed on {TODAY.isoformat()} (a test)" in d.reasons[-1]


def test_dates_in_any_order_are_one_cache_key() -> None:
    a = _my(safeguard_dates={"MY_TIA": "2025-01-01", "ASEAN_MCC": "2024-01-01"})
    b = _my(safeguard_dates={"ASEAN_MCC": "2024-01-01", "MY_TIA": "2025-01-01"})
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != _my(safeguard_dates={"MY_TIA": "2025-01-02", "ASEAN_MCC": "2024-01-01"}).cache_key()
