"""``data.residency.raw_processing`` (rego/residency/processing.rego) under both engines: where a site's raw payload
may be processed (residency cells, docs/cells.md). A category may be processed abroad exactly when the ordinary
decision allows it there with localization ``none``; at home always; the answer allows only when every category
does; and both engines give the same answer."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from policy import Flow
from policy.processing import RAW_PROCESSING_PATH, raw_processing
from tests.policy.flowset import LAPSED, RECENT

ORIGINS = ["CN", "RU", "VN", "DE", "US", "SG", "IN", "BR", "TH", "MY"]
PLACES = ["DE", "US", "SG", "CN"]
CATEGORIES = ["machine", "personal", "sensitive_personal", "important", "core"]
VARIANTS: list[dict[str, Any]] = [
    {},
    {"entity": {"ciio": True}},
    {"safeguards": ["SCC", "TIA", "CN_STANDARD_CONTRACT", "VN_TIA_FILED"]},
    {"safeguards": ["ASEAN_MCC"]},
]


@pytest.mark.parametrize("origin", ORIGINS)
def test_raw_processing_follows_the_decision_and_its_localization(both_engines: Any, origin: str) -> None:
    for place, extra in itertools.product(PLACES, VARIANTS):
        answer = raw_processing(
            both_engines, origin=origin, processing_country=place, categories=CATEGORIES, flow=extra
        )
        for category in CATEGORIES:
            verdict = answer.categories[category]
            if origin == place:
                assert verdict.allow, (origin, place, category)
                continue
            decision = both_engines.decide(
                Flow.model_validate({**extra, "origin": origin, "destination": place, "category": category})
            )
            free = decision.allow and decision.localization == "none"
            assert verdict.allow == free, (origin, place, category, extra, decision.localization)
            if decision.localization != "none":
                assert any(f"collected in {origin} first" in r for r in verdict.reasons)
        assert answer.allow == all(answer.categories[c].allow for c in CATEGORIES), (origin, place, extra)
        assert answer.allow or answer.reasons[0].split(":")[0] in CATEGORIES


def test_both_engines_give_the_same_answer(engine: Any, real_opa: Any) -> None:
    for origin, place, extra in itertools.product(ORIGINS, PLACES, VARIANTS):
        request = {**extra, "origin": origin, "processing_country": place, "categories": CATEGORIES}
        assert engine.document(RAW_PROCESSING_PATH, request) == real_opa.document(RAW_PROCESSING_PATH, request)


@pytest.mark.parametrize("request_", [{}, {"origin": "DE", "processing_country": "DE", "categories": []}, "DE"])
def test_malformed_requests_are_denied_by_both(both_engines: Any, request_: Any) -> None:
    assert both_engines.document(RAW_PROCESSING_PATH, request_)["allow"] is False


@pytest.mark.parametrize(
    ("origin", "flow", "allowed"),
    [
        ("TH", {}, False),
        ("TH", {"safeguards": ["ASEAN_MCC"]}, True),
        ("TH", {"safeguards": ["BCR"]}, False),
        ("MY", {}, False),
        ("MY", {"safeguards": ["ASEAN_MCC"]}, True),
        ("MY", {"safeguards": ["MY_TIA"]}, False),  # undated: not in force
        ("MY", {"safeguards": ["MY_TIA"], "safeguard_dates": {"MY_TIA": RECENT}}, True),
        ("MY", {"safeguards": ["MY_TIA"], "safeguard_dates": {"MY_TIA": LAPSED}}, False),
    ],
)
def test_an_asean_sites_raw_payload_may_be_processed_in_singapore_only_under_a_safeguard(
    both_engines: Any, origin: str, flow: dict[str, Any], allowed: bool
) -> None:
    """The demo's Thai site (deploy/local: th-rayong, served by cell ap in Singapore) relies on this."""
    answer = raw_processing(
        both_engines,
        origin=origin,
        processing_country="SG",
        categories=["machine", "personal", "sensitive_personal"],
        flow=flow,
    )
    assert answer.allow is allowed, answer.reasons
    assert answer.categories["machine"].allow
