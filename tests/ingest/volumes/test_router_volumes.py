"""The router with measured volumes, on the real policy: the 100,000th distinct individual transferred from a
non-CIIO Chinese site to Germany this year moves the flow from the CAC 2024 Provisions Art 5(4) exemption to
Art 8 (standard contract or certification), and the logged decision says so."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from ingest.pipeline.router import Routed, Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.records import DecisionRecord
from ingest.registry import Registry
from ingest.volumes.counter import subject_key
from ingest.volumes.tracker import VolumeTracker
from ingest.volumes.warnings import PolicyThresholds
from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, EmbeddedPolicyEngine

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC).isoformat()
SITE = "cn-dongguan"
DEVICE = "cn-dongguan-cnc-01"

REGISTRY = Registry.model_validate(
    {
        "regions": {"cn-north": {"country": "CN"}, "eu-central": {"country": "DE"}},
        "analytics_region": "eu-central",
        "profiles": {
            "mill": {
                "fields": {
                    "spindle_speed_rpm": {"category": "machine"},
                    "operator_badge": {"category": "personal", "type": "text"},
                }
            }
        },
        # Not a CIIO; TIA documented for Germany: the Art 5(4) exemption's only condition.
        "sites": {SITE: {"country": "CN", "home_region": "cn-north", "safeguards": {"DE": ["TIA"]}}},
        "devices": {DEVICE: {"site": SITE, "profile": "mill"}},
    }
)


def _message(seq: int, badge: str) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "device_id": DEVICE,
            "seq": seq,
            "sent_at": NOW,
            "readings": [{"ts": NOW, "values": {"spindle_speed_rpm": 1.0, "operator_badge": badge}}],
        }
    ).encode()


@pytest.fixture(scope="module")
def policy() -> CachedPolicyEngine:
    return CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR), maxsize=100)


def _personal_to_de(routed: Routed) -> DecisionRecord:
    return next(d for d in routed.decisions if d.category == "personal" and d.region == "eu-central")


def test_the_100000th_individual_changes_the_decision(policy):
    tracker = VolumeTracker(None, today=lambda: TODAY)
    # 99,998 individuals went to Germany earlier this year (as another replica's records would say).
    tracker._counter.merge_rows(
        (SITE, "eu-central", subject_key(SITE, f"earlier-{i}"), date(2026, 3, 1), None) for i in range(99_998)
    )
    router = Router(
        registry=REGISTRY, policy=policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20, volumes=tracker
    )

    first = _personal_to_de(router.route(f"tele/v1/{SITE}/{DEVICE}", _message(1, "B-99999")))
    assert first.outcome == "stored"
    assert first.input["volume"]["individuals_ytd"] == 99_999
    assert "Art 5(4)" in first.decision.reasons[0] and "99999 individuals" in first.decision.reasons[0]
    assert tracker.counts(SITE, "eu-central").individuals_ytd == 99_999

    crossing = _personal_to_de(router.route(f"tele/v1/{SITE}/{DEVICE}", _message(2, "B-100000")))
    assert crossing.outcome == "denied"
    assert crossing.input["volume"]["individuals_ytd"] == 100_000
    assert crossing.decision.requires == ["CN_CERTIFICATION", "CN_STANDARD_CONTRACT"]
    assert "Art 8: 100000 individuals" in crossing.decision.reasons[0]  # the new reason, in the decision log
    # Denied: the 100,000th person's data did not go to Germany, so the count stays.
    assert tracker.counts(SITE, "eu-central").individuals_ytd == 99_999
    again = _personal_to_de(router.route(f"tele/v1/{SITE}/{DEVICE}", _message(3, "B-99999")))
    assert again.outcome == "stored"  # someone already counted adds nobody

    # Another replica transfers one more person: 100,000 went abroad; the 100,001st is Art 8 too, and so is
    # anyone already counted (the cumulative count has reached 100,000).
    tracker._counter.merge((SITE, "eu-central"), subject_key(SITE, "elsewhere"), TODAY, None)
    for seq, badge, total in ((4, "B-100001", 100_001), (5, "B-99999", 100_000)):
        d = _personal_to_de(router.route(f"tele/v1/{SITE}/{DEVICE}", _message(seq, badge)))
        assert d.outcome == "denied" and d.input["volume"]["individuals_ytd"] == total
        assert f"Art 8: {total} individuals" in d.decision.reasons[0]
    # The machine data and the home region are not affected.
    routed = router.route(f"tele/v1/{SITE}/{DEVICE}", _message(6, "B-1"))
    assert {(d.category, d.region): d.outcome for d in routed.decisions} == {
        ("machine", "cn-north"): "stored",
        ("machine", "eu-central"): "stored",
        ("personal", "cn-north"): "stored",
        ("personal", "eu-central"): "denied",
    }


def test_declared_volume_is_a_floor(policy):
    declared = REGISTRY.model_copy(deep=True)
    site = declared.sites[SITE].model_copy(
        update={"volume": declared.sites[SITE].volume.model_copy(update={"individuals_ytd": 250_000})}
    )
    declared = Registry.model_validate({**declared.model_dump(), "sites": {SITE: site.model_dump()}})
    router = Router(
        registry=declared,
        policy=policy,
        pseudonymizer=Pseudonymizer(b"k"),
        max_bytes=1 << 20,
        volumes=VolumeTracker(None, today=lambda: TODAY),
    )
    d = _personal_to_de(router.route(f"tele/v1/{SITE}/{DEVICE}", _message(1, "B-1")))
    assert d.input["volume"]["individuals_ytd"] == 250_000 and "Art 8" in d.decision.reasons[0]


def test_warnings_at_80_percent_of_a_threshold():
    tracker = VolumeTracker(None, thresholds=PolicyThresholds(DEFAULT_POLICY_DIR), today=lambda: TODAY)
    tracker._counter.merge_rows((SITE, "eu-central", subject_key(SITE, f"p-{i}"), TODAY, None) for i in range(79_999))
    routes = tracker.routes(REGISTRY.sites, REGISTRY.regions, REGISTRY.candidate_regions)
    assert [(r.site_id, r.region, r.warnings) for r in routes] == [(SITE, "eu-central", [])]
    tracker._counter.merge((SITE, "eu-central"), subject_key(SITE, "one-more"), TODAY, None)
    (route,) = tracker.routes(REGISTRY.sites, REGISTRY.regions, REGISTRY.candidate_regions)
    (warning,) = route.warnings
    assert (warning.law, warning.counter, warning.value, warning.limit, warning.status) == (
        "CN CAC 2024 Provisions Art 8",
        "individuals_ytd",
        80_000,
        100_000,
        "approaching",
    )
    assert route.to_json()["measured"]["individuals_ytd"] == 80_000
