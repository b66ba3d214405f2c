"""The router on the real Rego engine: splitting by category and region, transforms, rejections."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.decision_ids import decision_id, doc_id
from ingest.pipeline.router import Routed, Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.registry import Device, Registry, Site
from policy import CachedPolicyEngine, EmbeddedPolicyEngine
from tests.ingest.transform_policy import TRANSFORM_POLICY

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC).isoformat()
CNC = {
    "spindle_speed_rpm": 1200.0,
    "spindle_temp_c": 40.0,
    "vibration_mm_s": 1.0,
    "power_kw": 5.0,
    "tool_wear_pct": 3.0,
    "fault_code": 0,
    "operator_badge": "B-1",
}


def _payload(device: str, seq: int, readings: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "device_id": device,
            "seq": seq,
            "sent_at": NOW,
            "readings": [{"ts": NOW, "values": r} for r in readings],
            **extra,
        }
    ).encode()


@pytest.fixture(scope="module")
def real_router(registry: Registry) -> Router:
    engine = CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(), maxsize=1000)
    return Router(registry=registry, policy=engine, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20)


def test_de_message_is_split_machine_travels_badge_stays(real_router: Router) -> None:
    routed = real_router.route("tele/v1/de-munich/de-munich-cnc-01", _payload("de-munich-cnc-01", 7, [CNC, CNC]))
    assert routed.rejections == []
    eu = {(r.seq, r.idx, r.name) for r in routed.rows["eu-central"]}
    us = {(r.seq, r.idx, r.name) for r in routed.rows["us-east"]}
    assert len(eu) == 14 and (7, 0, "operator_badge") in eu
    assert len(us) == 12 and all(name != "operator_badge" for _, _, name in us)
    outcomes = {(d.category, d.region): d.outcome for d in routed.decisions}
    assert outcomes == {
        ("machine", "eu-central"): "stored",
        ("machine", "us-east"): "stored",
        ("personal", "eu-central"): "stored",
        ("personal", "us-east"): "denied",
    }
    denied = next(d for d in routed.decisions if d.outcome == "denied")
    assert denied.doc_id == doc_id(denied.decision, denied.input)
    assert denied.decision_id == decision_id("de-munich-cnc-01", "personal", "us-east", "denied", denied.doc_id)
    # rows carry the distinct decision that placed them; the next message of the flow is decided the same way
    stored = {(d.category, d.region): d.decision_id for d in routed.decisions}
    assert {r.decision_id for r in routed.rows["us-east"]} == {stored["machine", "us-east"]}
    again = real_router.route("tele/v1/de-munich/de-munich-cnc-01", _payload("de-munich-cnc-01", 8, [CNC]))
    assert {(d.category, d.region): d.decision_id for d in again.decisions} == stored
    assert {d.seq for d in again.decisions} == {8}
    assert any("GDPR" in r for r in denied.decision.reasons)
    assert denied.input["origin"] == "DE" and denied.input["destination"] == "US"


def test_vn_personal_needs_the_filed_assessment(real_router: Router, registry: Registry) -> None:
    values = {
        "barrel_temp_c": 220.0,
        "injection_pressure_bar": 900.0,
        "cycle_time_s": 30.0,
        "vibration_mm_s": 2.0,
        "power_kw": 20.0,
        "fault_code": 0,
        "operator_badge": "VN-1",
    }
    routed = real_router.route("tele/v1/vn-hanoi/vn-hanoi-press-01", _payload("vn-hanoi-press-01", 1, [values]))
    names = {r.name for r in routed.rows["ap-southeast"]}
    assert "operator_badge" in names  # VN_TIA_FILED is declared for SG in the registry
    without = registry.model_copy(deep=True)
    site = without.sites["vn-hanoi"].model_copy(update={"safeguards": {}})
    without = without.model_copy(update={"sites": {**without.sites, "vn-hanoi": site}})
    router = Router(registry=without, policy=real_router.policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20)
    routed = router.route("tele/v1/vn-hanoi/vn-hanoi-press-01", _payload("vn-hanoi-press-01", 2, [values]))
    assert all(r.name != "operator_badge" for rows in routed.rows.values() for r in rows)
    assert [r.code for r in routed.rejections] == ["no_lawful_region"]
    assert "personal data from VN" in routed.rejections[0].detail


def test_th_personal_stays_in_singapore_under_the_asean_mcc(real_router: Router, registry: Registry) -> None:
    """The demo's Thai site: ASEAN_MCC is declared for SG only, so the badge is stored in ap-southeast and not
    in the US analytics region, while the machine data goes to both; without the clauses it has no region."""
    routed = real_router.route("tele/v1/th-rayong/th-rayong-cnc-01", _payload("th-rayong-cnc-01", 1, [CNC]))
    assert routed.rejections == []
    assert "operator_badge" in {r.name for r in routed.rows["ap-southeast"]}
    assert routed.rows["us-east"] and all(r.name != "operator_badge" for r in routed.rows["us-east"])
    outcomes = {(d.category, d.region): d.outcome for d in routed.decisions}
    assert outcomes == {
        ("machine", "ap-southeast"): "stored",
        ("machine", "us-east"): "stored",
        ("personal", "ap-southeast"): "stored",
        ("personal", "us-east"): "denied",
    }
    allowed = next(d for d in routed.decisions if (d.category, d.region) == ("personal", "ap-southeast"))
    assert allowed.input["safeguards"] == ["ASEAN_MCC"]
    assert any("TH PDPA B.E. 2562 s.28-29" in r and "ASEAN_MCC" in r for r in allowed.decision.reasons)
    site = registry.sites["th-rayong"].model_copy(update={"safeguards": {}})
    without = registry.model_copy(update={"sites": {**registry.sites, "th-rayong": site}})
    router = Router(registry=without, policy=real_router.policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20)
    routed = router.route("tele/v1/th-rayong/th-rayong-cnc-01", _payload("th-rayong-cnc-01", 2, [CNC]))
    assert all(r.name != "operator_badge" for rows in routed.rows.values() for r in rows)
    assert [r.code for r in routed.rejections] == ["no_lawful_region"]


def test_my_personal_follows_the_dated_transfer_impact_assessment(real_router: Router, registry: Registry) -> None:
    """A Malaysian site whose controller assessed Singapore (MY_TIA, dated in the registry): its badge is stored in
    ap-southeast while the assessment is under three years old, and has no lawful region once it has lapsed."""
    today = datetime.now(UTC).date()
    results = {}
    for label, day in (("recent", today.isoformat()), ("lapsed", f"{today.year - 3}-{today:%m-%d}")):
        site = Site(
            country="MY",
            home_region="ap-southeast",
            safeguards={"SG": ["MY_TIA"]},
            safeguard_dates={"SG": {"MY_TIA": day}},
        )
        devices = {**registry.devices, "my-penang-cnc-01": Device(site="my-penang", profile="cnc_mill")}
        reg = registry.model_copy(update={"sites": {**registry.sites, "my-penang": site}, "devices": devices})
        router = Router(registry=reg, policy=real_router.policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20)
        results[label] = router.route("tele/v1/my-penang/my-penang-cnc-01", _payload("my-penang-cnc-01", 1, [CNC]))
    assert "operator_badge" in {r.name for r in results["recent"].rows["ap-southeast"]}
    stored = next(d for d in results["recent"].decisions if (d.category, d.region) == ("personal", "ap-southeast"))
    assert stored.input["safeguard_dates"] == {"MY_TIA": today.isoformat()}
    assert all(r.name != "operator_badge" for rows in results["lapsed"].rows.values() for r in rows)
    assert [r.code for r in results["lapsed"].rejections] == ["no_lawful_region"]


def test_transforms_demanded_by_the_policy_are_applied(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "rego").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "rego" / "t.rego").write_text(TRANSFORM_POLICY)
    engine = EmbeddedPolicyEngine.from_dir(tmp_path)
    router = Router(registry=registry, policy=engine, pseudonymizer=Pseudonymizer(b"secret"), max_bytes=1 << 20)
    routed = router.route("tele/v1/de-munich/de-munich-cnc-01", _payload("de-munich-cnc-01", 1, [CNC]))
    badge = {region: [r for r in rows if r.name == "operator_badge"] for region, rows in routed.rows.items()}
    assert badge["eu-central"][0].txt == "B-1" and badge["eu-central"][0].transform is None  # domestic: as is
    us_badge = badge["us-east"][0]
    assert us_badge.txt is not None
    assert us_badge.txt != "B-1" and us_badge.txt.startswith("ps1:") and us_badge.transform == "pseudonymized"
    assert us_badge.txt == Pseudonymizer(b"secret").token("B-1")  # deterministic under one key
    outcomes = {(d.category, d.region): d.outcome for d in routed.decisions}
    assert outcomes[("personal", "us-east")] == "transformed"
    assert outcomes[("personal", "eu-central")] == "stored"


def test_edge_pseudonymized_fields_are_not_hashed_twice(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "rego").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "rego" / "t.rego").write_text(TRANSFORM_POLICY)
    router = Router(
        registry=registry,
        policy=EmbeddedPolicyEngine.from_dir(tmp_path),
        pseudonymizer=Pseudonymizer(b"secret"),
        max_bytes=1 << 20,
    )
    values = {**CNC, "operator_badge": "edge-token-1"}
    routed = router.route(
        "tele/v1/de-munich/de-munich-cnc-01",
        _payload(
            "de-munich-cnc-01", 1, [values], key_id="gw-key-1", edge_transforms={"operator_badge": "pseudonymized"}
        ),
    )
    us_badge = next(r for r in routed.rows["us-east"] if r.name == "operator_badge")
    assert (us_badge.txt, us_badge.transform) == ("edge-token-1", "pseudonymized")
    flow = next(d.input for d in routed.decisions if d.category == "personal")
    assert flow["transforms_applied"] == ["pseudonymized"]


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("tele/v1/de-munich/de-munich-cnc-01", b"\xff\xfe", "malformed"),
        ("tele/v9/de-munich/de-munich-cnc-01", _payload("de-munich-cnc-01", 1, [CNC]), "bad_topic"),
        ("tele/v1/de-munich/de-munich-cnc-02", _payload("de-munich-cnc-01", 1, [CNC]), "topic_mismatch"),
        ("tele/v1/de-munich/ghost", _payload("ghost", 1, [CNC]), "unknown_device"),
        ("tele/v1/fr-lyon/de-munich-cnc-01", _payload("de-munich-cnc-01", 1, [CNC]), "site_mismatch"),
        (
            "tele/v1/de-munich/de-munich-cnc-01",
            _payload("de-munich-cnc-01", 1, [CNC], origin={"site_id": "fr-lyon"}),
            "origin_mismatch",
        ),
        ("tele/v1/de-munich/de-munich-cnc-01", _payload("de-munich-cnc-01", 1, [CNC] * 2000), "oversized"),
    ],
)
def test_rejections(real_router: Router, topic: str, payload: bytes, code: str) -> None:
    router = Router(
        registry=real_router.registry, policy=real_router.policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=64 * 1024
    )
    routed = router.route(topic, payload)
    assert [r.code for r in routed.rejections] == [code]
    assert routed.rows == {} and not routed.stored
    assert routed.rejections[0].payload_bytes == len(payload)


def test_gzip_payloads_are_inflated_within_the_limit(real_router: Router) -> None:
    import gzip

    plain = _payload("de-munich-cnc-01", 9, [CNC])
    routed = real_router.route("tele/v1/de-munich/de-munich-cnc-01", gzip.compress(plain))
    assert routed.rejections == [] and len(routed.rows["eu-central"]) == 7
    bomb = gzip.compress(b"{" + b" " * (2 << 20) + b"}")  # small on the wire, 2 MiB inflated
    small = Router(
        registry=real_router.registry, policy=real_router.policy, pseudonymizer=Pseudonymizer(b"k"), max_bytes=1 << 20
    )
    rejected = small.route("tele/v1/de-munich/de-munich-cnc-01", bomb)
    assert [r.code for r in rejected.rejections] == ["malformed"]
    assert "inflates beyond the limit" in rejected.rejections[0].detail
    broken = small.route("tele/v1/de-munich/de-munich-cnc-01", b"\x1f\x8b\x08garbage")
    assert "invalid gzip" in broken.rejections[0].detail


def test_a_registry_change_decides_only_messages_received_after_it(registry: Registry) -> None:
    """Issue 12: a site's country, home region and a field's category decide where personal data goes; a
    change (cn-shenzhen moved to the US) takes effect for messages received after it, not for those received
    before it and still waiting to be routed."""
    import time

    from ingest.registry import overlay

    router = Router(
        registry=registry,
        policy=CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(), maxsize=100),
        pseudonymizer=Pseudonymizer(b"k"),
        max_bytes=1 << 20,
    )
    topic, device = "tele/v1/cn-shenzhen/cn-shenzhen-cnc-01", "cn-shenzhen-cnc-01"
    received_before = time.monotonic()
    moved = registry.sites["cn-shenzhen"].model_dump(mode="json") | {"country": "US", "home_region": "us-east"}
    router.replace_registry(overlay(registry, sites={"cn-shenzhen": moved}, devices={}))
    received_after = time.monotonic()

    def badge_regions(routed: Routed) -> set[str]:
        return {region for region, rows in routed.rows.items() if any(row.name == "operator_badge" for row in rows)}

    before = router.route(topic, _payload(device, 1, [CNC]), received=received_before)
    assert {d.origin_country for d in before.decisions} == {"CN"}
    assert badge_regions(before) == {"cn-north"}  # as the registry said when it arrived: the badge stays in CN
    after = router.route(topic, _payload(device, 2, [CNC]), received=received_after)
    assert {d.origin_country for d in after.decisions} == {"US"} and badge_regions(after) == {"us-east"}
    unknown = router.route(topic, _payload(device, 3, [CNC]))  # no arrival time: the registry in force
    assert {d.origin_country for d in unknown.decisions} == {"US"}
