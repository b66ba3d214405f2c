"""ingest.quarantine.placement: where a quarantined payload may lawfully live (pure)."""

from __future__ import annotations

import uuid

from ingest.quarantine.placement import held_payloads, lawful_region, quarantine_id, rejection
from ingest.records import ID_NAMESPACE, RejectionRecord
from ingest.registry import Registry, Site

REGIONS = ("ap-southeast", "cn-north", "eu-central", "us-east")


def test_the_home_region_first_then_the_others_by_name(registry: Registry) -> None:
    site = registry.sites["de-munich"]  # home: eu-central
    asked: list[tuple[str, str]] = []

    def allows(_site: Site, region: str, category: str) -> bool:
        asked.append((region, category))
        return region in {"us-east", "cn-north"}

    assert lawful_region(site, ("machine",), REGIONS, allows) == "cn-north"
    assert [region for region, _ in asked] == ["eu-central", "ap-southeast", "cn-north"]
    assert lawful_region(site, ("machine",), REGIONS, lambda _s, _r, _c: True) == "eu-central"
    assert lawful_region(site, ("machine",), ("us-east", "ap-southeast"), lambda _s, _r, _c: True) == "ap-southeast"


def test_every_category_must_be_allowed_or_the_payload_is_discarded(registry: Registry) -> None:
    site = registry.sites["de-munich"]
    only_machine = lambda _s, _r, category: category == "machine"  # noqa: E731
    assert lawful_region(site, ("machine", "personal"), REGIONS, only_machine) is None
    held = rejection(
        "tele/v1/de-munich/de-munich-cnc-01",
        b"{}",
        "malformed",
        "bad",
        "de-munich-cnc-01",
        None,
        hold=True,
        registry=registry,
        regions=REGIONS,
        allows=only_machine,
    )
    assert (held.payload_region, held.payload, held.state) == (None, None, "discarded")
    assert "payload discarded" in held.detail and held.origin_country == site.country
    assert held.category is not None and "personal" in held.category.split("/")  # unclassified content


def test_an_unknown_origin_keeps_metadata_only(registry: Registry) -> None:
    r = rejection(
        "tele/v1/x/ghost",
        b"{}",
        "unknown_device",
        "who",
        "ghost",
        1,
        hold=True,
        registry=registry,
        regions=REGIONS,
        allows=lambda _s, _r, _c: True,
    )
    assert (r.payload_region, r.payload, r.origin_country, r.category) == (None, None, None, None)
    assert r.quarantine_id == quarantine_id("tele/v1/x/ghost", b"{}", "unknown_device", None)


def test_ids_are_deterministic_and_held_payloads_are_grouped_by_region_in_order() -> None:
    qid = quarantine_id("t", b"p", "malformed", "personal")
    assert qid == quarantine_id("t", b"p", "malformed", "personal") != quarantine_id("t", b"q", "malformed", "personal")
    assert qid.version == 5 and isinstance(ID_NAMESPACE, uuid.UUID)
    a = RejectionRecord("a", "malformed", "", 1, quarantine_id=qid, payload_region="eu-central", payload=b"1")
    b = RejectionRecord("b", "unknown_device", "", 1)
    c = RejectionRecord("c", "wrong_type", "", 1, quarantine_id=qid, payload_region="eu-central", payload=b"3")
    assert held_payloads([a, b, c]) == {"eu-central": [(qid, "a", b"1"), (qid, "c", b"3")]}
