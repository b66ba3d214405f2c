"""The outcome rule shared by the ingest's router and the what-if replay."""

from __future__ import annotations

from policy.outcome import outcome_of


def test_outcome_of_a_decision() -> None:
    assert outcome_of(False) == "denied"
    assert outcome_of(False, transformed=True) == "denied"  # a denied flow stores nothing, transformed or not
    assert outcome_of(True) == "stored"
    assert outcome_of(True, transformed=True) == "transformed"
