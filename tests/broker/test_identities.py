"""broker.identities: who may connect and which topics each identity may use, from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import BrokerConfigError
from broker.identities import Identity, load_identities, plan
from ingest.registry import Device, Registry, SparkplugAddress
from tests.broker.support import REPO, demo_registry, spec


def _by_name(registry: Registry, gateways: dict[str, dict[str, object]]) -> dict[str, Identity]:
    return {i.name: i for i in plan(registry, spec(gateways))}


def test_demo_identities_cover_every_device_through_its_sites_gateway() -> None:
    registry = demo_registry()
    idents = plan(registry, load_identities(REPO / "deploy/local/broker-identities.yaml"))
    gateways = [i for i in idents if i.kind == "gateway"]
    assert {i.name for i in gateways} == {f"{s}-gw-01" for s in registry.sites}
    assert not [i for i in idents if i.kind == "device"]  # every device is served by its site's gateway
    munich = next(i for i in gateways if i.name == "de-munich-gw-01")
    assert munich.writes == (
        "tele/v1/de-munich/de-munich-cnc-01",
        "tele/v1/de-munich/de-munich-press-01",
        "status/v1/de-munich/de-munich-gw-01",
    )
    assert munich.reads == () and munich.subscribes == ()
    ingest = [i for i in idents if i.kind == "ingest"]
    filters = (
        "$share/ingest/tele/v1/+/+",
        "status/v1/+/+",
        *(
            f"$share/ingest/spBv1.0/+/{kind}"
            for kind in ("NBIRTH/+", "NDATA/+", "NDEATH/+", "DBIRTH/+/+", "DDATA/+/+", "DDEATH/+/+")
        ),
    )
    reads = ("tele/v1/#", "status/v1/#", "spBv1.0/#")
    assert [(i.name, i.reads, i.writes, i.subscribes) for i in ingest] == [
        ("ingest-1", reads, ("spBv1.0/+/NCMD/+",), filters),  # the Sparkplug Rebirth requests (NCMD)
        ("ingest-2", reads, ("spBv1.0/+/NCMD/+",), filters),
    ]


def test_listed_devices_and_direct_devices() -> None:
    idents = _by_name(demo_registry(), {"gw-a": {"site": "de-munich", "devices": ["de-munich-cnc-01"]}})
    assert idents["gw-a"].writes == ("tele/v1/de-munich/de-munich-cnc-01", "status/v1/de-munich/gw-a")
    press = idents["de-munich-press-01"]  # no gateway serves it: its own identity
    assert press.kind == "device"
    assert press.writes == ("tele/v1/de-munich/de-munich-press-01", "status/v1/de-munich/de-munich-press-01")


def test_a_sparkplug_edge_node_gets_its_own_identity() -> None:
    """docs/sparkplug.md: the edge node publishes its births, data and Will, and receives its commands; a site's
    gateway does not serve its devices."""
    registry = demo_registry()
    spb = {"group": "munich", "edge_node": "tahu-01"}
    devices = dict(registry.devices) | {
        "spb-press": Device(site="de-munich", profile="cnc_mill", sparkplug=SparkplugAddress(**spb, device="press-01")),
        "spb-node": Device(site="de-munich", profile="cnc_mill", sparkplug=SparkplugAddress(**spb)),
    }
    bigger = Registry.model_validate({**registry.model_dump(), "devices": devices})
    idents = _by_name(bigger, {"gw": {"site": "de-munich"}})
    node = idents["munich.tahu-01"]
    assert (node.kind, node.site, node.devices) == ("sparkplug", "de-munich", ("spb-node", "spb-press"))
    assert "spBv1.0/munich/NDEATH/tahu-01" in node.writes and "spBv1.0/munich/DDATA/tahu-01/+" in node.writes
    assert "spBv1.0/munich/NCMD/tahu-01/#" in node.subscribes
    assert not [t for t in idents["gw"].writes if "spb" in t]


def test_a_device_registered_later_is_added_to_its_sites_gateway() -> None:
    """The lead passes the effective registry (YAML + API): a new device appears in the ACL."""
    registry = demo_registry()
    devices = dict(registry.devices) | {"de-munich-mill-09": Device(site="de-munich", profile="cnc_mill")}
    bigger = registry.model_copy(update={"devices": devices})
    munich = _by_name(bigger, {"gw": {"site": "de-munich"}})["gw"]
    assert "tele/v1/de-munich/de-munich-mill-09" in munich.writes


@pytest.mark.parametrize(
    ("gateways", "message"),
    [
        ({"gw": {"site": "atlantis"}}, "gateways.gw.site: 'atlantis' is not a registry site"),
        ({"gw": {"site": "de-munich", "devices": ["nope"]}}, "gateways.gw.devices: 'nope' is not a registry device"),
        (
            {"gw": {"site": "de-munich", "devices": ["fr-lyon-cnc-01"]}},
            "'fr-lyon-cnc-01' belongs to site 'fr-lyon', not 'de-munich'",
        ),
        (
            {
                "a": {"site": "de-munich", "devices": ["de-munich-cnc-01"]},
                "b": {"site": "de-munich", "devices": ["de-munich-cnc-01"]},
            },
            "gateways.b.devices: 'de-munich-cnc-01' is already served by 'a'",
        ),
        ({"a": {"site": "de-munich"}, "b": {"site": "de-munich"}}, "site 'de-munich' already has a gateway"),
        ({"de-munich-cnc-01": {"site": "de-munich"}}, "is both a registry device and a gateway"),
    ],
    ids=["unknown-site", "unknown-device", "device-of-another-site", "device-twice", "two-site-wide", "name-clash"],
)
def test_inconsistent_identities_are_refused_naming_the_field(
    gateways: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(BrokerConfigError) as err:
        plan(demo_registry(), spec(gateways))
    assert str(err.value).startswith("identities: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gateways: {gw: {site: s, colour: red}}", "gateways.gw.colour: Extra inputs are not permitted"),
        ("gateways: {'gw/1': {site: s}}", "gateways: gateway id 'gw/1' must be"),
        ("ingest: [a, a]", "ingest: ingest accounts must be distinct"),
        ("ingest: [x]\ngateways: {x: {site: s}}", "gateways: 'x' is also an ingest account"),
        ("[1, 2]", "must be a mapping"),
        ("gateways: {gw: [", "not valid YAML"),
        ("share_group: 'a/b'", "share_group: 'a/b' must be 1-64 letters"),
    ],
    ids=["extra-field", "bad-id", "duplicate-ingest", "ingest-is-gateway", "not-mapping", "bad-yaml", "share-group"],
)
def test_identities_file_errors_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(text)
    with pytest.raises(BrokerConfigError) as err:
        load_identities(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_missing_identities_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match=r"nope\.yaml: cannot read identities file"):
        load_identities(tmp_path / "nope.yaml")
