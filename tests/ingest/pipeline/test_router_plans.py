"""Routing plans (``Router._plan``, docs/small-messages.md): a device's messages of one shape are decided once, and
the plan is never served when a fresh decision could differ (the registry, the policy's answer, the measured
volumes). Each test routes the same messages through one long-lived router and, message by message, through a
router made for that message alone; they must produce the same rows, decisions and quarantine records."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path

import pytest

from ingest.pipeline.router import Routed, Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.registry import Registry
from ingest.volumes.counter import Counts, subject_key
from ingest.volumes.tracker import VolumeTracker
from policy import CachedPolicyEngine, EmbeddedPolicyEngine, PolicyEngine
from tests.ingest.pipeline.test_router import CNC, NOW  # the CNC mill profile's full set of values
from tests.ingest.transform_policy import TRANSFORM_POLICY

# a Chinese site (not a CIIO, TIA documented for Germany), for the CAC 2024 Provisions' 100,000 individuals
from tests.ingest.volumes.test_router_volumes import DEVICE as CN_DEVICE
from tests.ingest.volumes.test_router_volumes import REGISTRY as CN_REGISTRY
from tests.ingest.volumes.test_router_volumes import SITE as CN_SITE

PRESS = {"barrel_temp_c": 210.0, "cycle_time_s": 12.5, "fault_code": 3, "operator_badge": "P-7"}


def _message(device: str, seq: int, values: dict[str, object], **extra: object) -> bytes:
    body = {"v": 1, "device_id": device, "seq": seq, "sent_at": NOW, "readings": [{"ts": NOW, "values": values}]}
    return json.dumps({**body, **extra}).encode()


def _same(a: Routed, b: Routed) -> None:
    assert a.rows == b.rows
    assert a.decisions == b.decisions
    assert a.rejections == b.rejections  # codes, details, where the payload is held


def _check(
    messages: list[tuple[str, bytes]], make: Callable[[], Router], long_lived: Router
) -> list[tuple[Routed, Routed]]:
    out = []
    for topic, payload in messages:
        planned, fresh = long_lived.route(topic, payload), make().route(topic, payload)
        _same(planned, fresh)
        out.append((planned, fresh))
    return out


@pytest.fixture(scope="module")
def shipped() -> CachedPolicyEngine:
    return CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(), maxsize=1000)


def _router(registry: Registry, engine: PolicyEngine, volumes: VolumeTracker | None = None) -> Router:
    return Router(
        registry=registry, policy=engine, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20, volumes=volumes
    )


def test_plans_route_every_shape_as_a_fresh_router(registry: Registry, shipped: CachedPolicyEngine) -> None:
    messages: list[tuple[str, bytes]] = []
    for seq in range(1, 4):  # the same shape thrice, other values: one plan per device
        for device, site, values in (
            ("de-munich-cnc-01", "de-munich", CNC),
            ("cn-shenzhen-cnc-01", "cn-shenzhen", CNC),
            ("vn-hanoi-press-01", "vn-hanoi", PRESS),
            ("th-rayong-press-01", "th-rayong", PRESS),
        ):
            changed = {k: (v * seq if isinstance(v, float) else v) for k, v in values.items()}
            messages.append((f"tele/v1/{site}/{device}", _message(device, seq, changed)))
    de = "tele/v1/de-munich/de-munich-cnc-01"
    without_badge = {k: v for k, v in CNC.items() if k != "operator_badge"}
    messages += [
        (de, _message("de-munich-cnc-01", 10, without_badge)),  # one category fewer: another shape
        (de, _message("de-munich-cnc-01", 11, {"operator_badge": "B-2"})),  # only the personal category
        (de, _message("de-munich-cnc-01", 12, {**CNC, "spindle_temp_c": "hot"})),  # a wrong type: quarantined
        (de, _message("de-munich-cnc-01", 13, {**CNC, "ghost": 1.0})),  # an undeclared field
        (de, _message("de-munich-cnc-01", 14, {"ghost": 1.0})),  # nothing to decide
        (  # pseudonymised at the edge: another shape; its rows marked
            de,
            _message(
                "de-munich-cnc-01",
                15,
                {**CNC, "operator_badge": "tok"},
                edge_transforms={"operator_badge": "pseudonymized"},
            ),
        ),
        (de, _message("de-munich-cnc-01", 16, CNC)),  # back to the first shape
    ]
    long_lived = _router(registry, shipped)
    _check(messages, lambda: _router(registry, shipped), long_lived)
    assert long_lived.plans_reused >= 9  # the repeated shapes were not decided again


def test_a_plan_is_not_served_by_another_policy_or_on_another_day(
    tmp_path: Path, registry: Registry, shipped: CachedPolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rego").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "rego" / "t.rego").write_text(TRANSFORM_POLICY)
    transforming = CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(tmp_path), maxsize=100)
    topic = "tele/v1/de-munich/de-munich-cnc-01"
    router = _router(registry, shipped)

    def personal_us(seq: int) -> str:
        routed = router.route(topic, _message("de-munich-cnc-01", seq, CNC))
        return next(d.outcome for d in routed.decisions if d.category == "personal" and d.region == "us-east")

    shipped_outcome = personal_us(1)
    assert shipped_outcome != "transformed"
    router.policy = transforming  # as an activation replaces the engine
    assert personal_us(2) == "transformed"
    router.policy = shipped
    assert personal_us(3) == shipped_outcome
    made = router.plans_made
    assert personal_us(4) == shipped_outcome and router.plans_made == made  # reused while nothing changed
    # The next UTC day: the cache decides again (adequacy decisions expire by day), so the plan is made again.
    tomorrow = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: tomorrow)  # the policy cache reads the day from it
    assert personal_us(5) == shipped_outcome and router.plans_made == made + 1


def test_plans_follow_the_measured_volumes_across_a_threshold(shipped: CachedPolicyEngine) -> None:
    """Near the CAC 2024 Provisions' 100,000 individuals (Art 5(4) -> Art 8), a badge seen today keeps the counts
    and its plan; a new badge raises them, and the decision changes."""
    today = date(2026, 11, 22)

    def tracker() -> VolumeTracker:
        t = VolumeTracker(None, today=lambda: today)
        t._counter.merge_rows(
            (CN_SITE, "eu-central", subject_key(CN_SITE, f"earlier-{i}"), date(2026, 3, 1), None) for i in range(99_997)
        )
        return t

    planned_volumes, fresh_volumes = tracker(), tracker()
    topic = f"tele/v1/{CN_SITE}/{CN_DEVICE}"
    badges = ["B-1", "B-1", "B-1", "B-2", "B-2", "B-1", "B-3", "B-3", "B-4", "B-1"]
    messages = [
        (topic, _message(CN_DEVICE, seq, {"spindle_speed_rpm": 1.0, "operator_badge": b}))
        for seq, b in enumerate(badges, 1)
    ]
    long_lived = _router(CN_REGISTRY, shipped, planned_volumes)
    results = _check(messages, lambda: _router(CN_REGISTRY, shipped, fresh_volumes), long_lived)
    reasons = [
        next(d for d in planned.decisions if d.category == "personal" and d.region == "eu-central").decision.reasons
        for planned, _ in results
    ]
    assert len({tuple(r) for r in reasons}) >= 2  # the threshold was crossed within the sequence
    assert long_lived.plans_reused >= 4  # the repeated badges were routed by plans
    assert planned_volumes.counts(CN_SITE, "eu-central") == fresh_volumes.counts(CN_SITE, "eu-central")


def test_a_plan_is_raised_with_the_counts_it_is_keyed_on(shipped: CachedPolicyEngine) -> None:
    """Another replica's records can arrive (the tracker's sync thread) between the counts a plan is keyed on and
    the flows it is made of: the flows are raised with the key's counts, else a later message with those counts
    would be decided on others."""
    tracker = VolumeTracker(None, today=lambda: date(2026, 11, 22))
    counts_with = tracker.counts_with

    def then_a_sync(site_id: str, regions: Iterable[str], subjects: Mapping[bytes, bool]) -> tuple[Counts, ...]:
        counts = counts_with(site_id, regions, subjects)
        tracker._counter.merge_rows(  # five individuals another replica sent to Germany, merged right now
            (CN_SITE, "eu-central", subject_key(CN_SITE, f"other-{i}"), date(2026, 3, 1), None) for i in range(5)
        )
        return counts

    tracker.counts_with = then_a_sync  # type: ignore[method-assign]
    router = _router(CN_REGISTRY, shipped, tracker)
    routed = router.route(
        f"tele/v1/{CN_SITE}/{CN_DEVICE}", _message(CN_DEVICE, 1, {"spindle_speed_rpm": 1.0, "operator_badge": "B-1"})
    )
    logged = next(d for d in routed.decisions if d.category == "personal" and d.region == "eu-central")
    assert logged.input["volume"]["individuals_ytd"] == 1  # the key's counts: this message's badge only
    assert tracker.counts(CN_SITE, "eu-central").individuals_ytd >= 5  # the merge did happen
