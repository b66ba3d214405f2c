"""The effective registry (YAML overlaid with API entries) and how a replica follows it: real PostgreSQL for
the control store, the real Rego engine behind the router."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from ingest.errors import StoreUnavailableError
from ingest.pipeline.router import Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.registry import Registry, RegistryEntryError
from ingest.registry_sync import RegistrySync, effective
from ingest.store import registry_store
from ingest.store.registry_store import RegistryEntry, RegistrySnapshot
from policy import CachedPolicyEngine, EmbeddedPolicyEngine

T = datetime(2026, 11, 22, tzinfo=UTC)
BERLIN = {"country": "DE", "home_region": "eu-central", "name": "Berlin plant"}
BERLIN_CNC = {"site": "de-berlin", "profile": "cnc_mill"}


def _entry(kind: str, entry_id: str, spec: dict[str, Any] | None, revision: int = 1) -> RegistryEntry:
    return RegistryEntry(kind, entry_id, spec, revision, T, "olga")  # type: ignore[arg-type]


def _write(dsn: str, kind: str, entry_id: str, spec: dict[str, Any] | None) -> int:
    with psycopg.connect(dsn) as conn, conn.transaction():
        registry_store.lock_revision(conn)
        return registry_store.write_entry(conn, kind=kind, entry_id=entry_id, spec=spec, actor="test")  # type: ignore[arg-type]


# --- the overlay --------------------------------------------------------------------------------------------


def test_without_api_entries_the_effective_registry_is_the_file(registry: Registry) -> None:
    state = effective(registry, RegistrySnapshot(0, ()))
    assert state.revision == 0
    assert state.registry.sites == registry.sites and state.registry.devices == registry.devices
    assert state.source("site", "de-munich") == "file"
    assert state.source("device", "de-munich-cnc-01") == "file"


def test_api_entries_add_override_and_decommission(registry: Registry) -> None:
    snapshot = RegistrySnapshot(
        4,
        (
            _entry("site", "de-berlin", BERLIN),
            _entry("device", "de-berlin-cnc-01", BERLIN_CNC),
            _entry("site", "vn-hanoi", {"country": "VN", "home_region": "ap-southeast"}),  # drops its safeguards
            _entry("device", "fr-lyon-comp-01", None),
        ),
    )
    state = effective(registry, snapshot)
    reg = state.registry
    assert state.revision == 4
    assert reg.site_of("de-berlin-cnc-01") == ("de-berlin", reg.sites["de-berlin"])
    assert reg.sites["de-berlin"].name == "Berlin plant"
    assert reg.sites["vn-hanoi"].safeguards == {} and registry.sites["vn-hanoi"].safeguards == {"SG": ["VN_TIA_FILED"]}
    assert "fr-lyon-comp-01" not in reg.devices and "fr-lyon-comp-01" in registry.devices
    assert (state.source("site", "de-berlin"), state.source("site", "vn-hanoi"), state.source("site", "de-munich")) == (
        "api",
        "api",
        "file",
    )
    tombstone = state.entry("device", "fr-lyon-comp-01")
    assert state.source("device", "fr-lyon-comp-01") == "file" and tombstone is not None and tombstone.decommissioned
    assert reg.sites["de-munich"] is registry.sites["de-munich"]  # unchanged entries are shared, not copied


@pytest.mark.parametrize(
    ("entries", "where", "field", "message"),
    [
        (
            [_entry("device", "x-1", {"site": "nowhere", "profile": "cnc_mill"})],
            "devices.x-1.site",
            "site",
            "'nowhere' is not a declared site",
        ),
        (
            [_entry("device", "x-1", {"site": "de-munich", "profile": "robot"})],
            "devices.x-1.profile",
            "profile",
            "'robot' is not a declared profile",
        ),
        (
            [_entry("site", "de-berlin", {**BERLIN, "home_region": "mars"})],
            "sites.de-berlin.home_region",
            "home_region",
            "'mars' is not a declared region",
        ),
        (
            [_entry("site", "de-berlin", {**BERLIN, "country": "Germany"})],
            "sites.de-berlin.country",
            "country",
            "String should match pattern",
        ),
        (
            [_entry("site", "de-munich", None)],
            "devices.de-munich-cnc-01.site",
            "site",
            "'de-munich' is not a declared site",
        ),
    ],
)
def test_an_invalid_overlay_names_the_entry_and_the_field(
    registry: Registry, entries: list[RegistryEntry], where: str, field: str, message: str
) -> None:
    with pytest.raises(RegistryEntryError) as info:
        effective(registry, RegistrySnapshot(1, tuple(entries)))
    assert info.value.where == where and info.value.field == field
    assert message in info.value.message and str(info.value).startswith(f"{where}: ")


# --- the synchroniser ---------------------------------------------------------------------------------------


def test_load_refresh_and_listeners(registry: Registry, control: str) -> None:
    sync = RegistrySync(base=registry, control_dsn=control, refresh_s=60)
    seen: list[Registry] = []
    sync.on_change(seen.append)
    try:
        assert sync.load().revision == 0 and sync.registry.devices == registry.devices
        assert len(seen) == 1  # the initial load is a swap too (from "not loaded")
        assert sync.refresh() is False  # nothing changed
        _write(control, "site", "de-berlin", BERLIN)
        revision = _write(control, "device", "de-berlin-cnc-01", BERLIN_CNC)
        assert sync.refresh() is True
        assert sync.revision == revision == 2
        assert seen[-1] is sync.registry and "de-berlin-cnc-01" in sync.registry.devices
        assert sync.current.source("device", "de-berlin-cnc-01") == "api"
        assert sync.refresh() is False and len(seen) == 2
    finally:
        sync.stop()


def test_the_background_refresher_follows_changes_made_elsewhere(registry: Registry, control: str) -> None:
    sync = RegistrySync(base=registry, control_dsn=control, refresh_s=0.05)
    sync.load()
    sync.start()
    try:
        revision = _write(control, "site", "de-berlin", BERLIN)
        deadline = time.monotonic() + 5
        while sync.revision != revision and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sync.revision == revision and "de-berlin" in sync.registry.sites
    finally:
        sync.stop()


def test_a_revision_that_does_not_fit_the_file_is_refused_once_and_the_running_one_stays(
    registry: Registry, control: str, caplog: pytest.LogCaptureFixture
) -> None:
    sync = RegistrySync(base=registry, control_dsn=control, refresh_s=60)
    sync.load()
    good = _write(control, "site", "de-berlin", BERLIN)
    sync.poll_once()
    # Written behind the API's back (or the YAML lost the profile since): the overlay is invalid.
    _write(control, "device", "de-berlin-robot-01", {"site": "de-berlin", "profile": "robot"})
    with caplog.at_level(logging.ERROR, logger="ingest.registry"):
        sync.poll_once()
        sync.poll_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "devices.de-berlin-robot-01.profile: 'robot' is not a declared profile" in errors[0]
    assert sync.revision == good and "de-berlin" in sync.registry.sites
    fixed = _write(control, "device", "de-berlin-robot-01", {"site": "de-berlin", "profile": "compressor"})
    sync.poll_once()
    assert sync.revision == fixed and sync.registry.devices["de-berlin-robot-01"].profile == "compressor"
    sync.stop()


def test_an_unreachable_control_store_keeps_the_running_registry(
    registry: Registry, control: str, caplog: pytest.LogCaptureFixture
) -> None:
    sync = RegistrySync(base=registry, control_dsn=control, refresh_s=60)
    sync.load()
    sync._store.dsn = "postgresql://postgres@127.0.0.1:1/nowhere"  # as if the control store went away
    sync._store.close()
    with pytest.raises(StoreUnavailableError, match="control"):
        sync.refresh()
    with caplog.at_level(logging.WARNING, logger="ingest.registry"):
        sync.poll_once()
    assert "keeping revision 0" in caplog.text and sync.registry is not None and sync.revision == 0
    sync.stop()


# --- the router follows the swap ---------------------------------------------------------------------------


def _payload(device: str, seq: int, values: dict[str, Any]) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {"v": 1, "device_id": device, "seq": seq, "sent_at": now, "readings": [{"ts": now, "values": values}]}
    ).encode()


def test_the_router_routes_a_new_device_and_decides_with_the_new_site_definition(
    registry: Registry, control: str
) -> None:
    router = Router(
        registry=registry,
        policy=CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(), maxsize=100),
        pseudonymizer=Pseudonymizer(b"k"),
        max_bytes=1 << 20,
    )
    sync = RegistrySync(base=registry, control_dsn=control, refresh_s=60)
    sync.load()
    sync.on_change(router.replace_registry)
    badge = {"spindle_speed_rpm": 1000.0, "operator_badge": "B-7"}

    routed = router.route("tele/v1/de-berlin/de-berlin-cnc-01", _payload("de-berlin-cnc-01", 1, badge))
    assert [r.code for r in routed.rejections] == ["unknown_device"]

    _write(control, "site", "de-berlin", BERLIN)
    _write(control, "device", "de-berlin-cnc-01", BERLIN_CNC)
    sync.refresh()
    routed = router.route("tele/v1/de-berlin/de-berlin-cnc-01", _payload("de-berlin-cnc-01", 2, badge))
    assert routed.rejections == []
    outcomes = {(d.category, d.region): d.outcome for d in routed.decisions}
    assert outcomes[("personal", "us-east")] == "denied"  # GDPR: no safeguard for the US recipient
    assert outcomes[("machine", "us-east")] == "stored"

    # The site now has SCCs in force for the US: the memoised flow of the old definition must not be used.
    _write(control, "site", "de-berlin", {**BERLIN, "safeguards": {"US": ["SCC", "TIA"]}})
    sync.refresh()
    routed = router.route("tele/v1/de-berlin/de-berlin-cnc-01", _payload("de-berlin-cnc-01", 3, badge))
    personal_us = next(d for d in routed.decisions if (d.category, d.region) == ("personal", "us-east"))
    assert personal_us.input["safeguards"] == ["SCC", "TIA"]
    assert personal_us.outcome != "denied"

    # Moved to another country: the decision input follows at once.
    _write(control, "site", "de-berlin", {**BERLIN, "country": "FR"})
    sync.refresh()
    routed = router.route("tele/v1/de-berlin/de-berlin-cnc-01", _payload("de-berlin-cnc-01", 4, badge))
    assert {d.origin_country for d in routed.decisions} == {"FR"}

    _write(control, "device", "de-berlin-cnc-01", None)  # decommissioned
    sync.refresh()
    routed = router.route("tele/v1/de-berlin/de-berlin-cnc-01", _payload("de-berlin-cnc-01", 5, badge))
    assert [r.code for r in routed.rejections] == ["unknown_device"]
    sync.stop()
