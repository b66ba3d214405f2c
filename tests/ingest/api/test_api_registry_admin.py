"""Operators register sites and devices through the API: roles, region scope, validation naming the field,
conflicts, the audit trail, and the effective registry (YAML + API) with each entry's source. Real
PostgreSQL (a fresh control store per test), real tokens."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack import PostgresServer
from ingest.api import create_app
from ingest.auth.roles import Role
from ingest.registry import Registry
from ingest.registry_sync import RegistrySync
from ingest.runtime import Runtime
from ingest.store import users
from ingest.store.migrate import migrate
from tests.ingest.api.api_seed import FAST, FakePipeline, build_runtime, close_runtime

_n = itertools.count(1)
BERLIN = {"site_id": "de-berlin", "country": "DE", "home_region": "eu-central", "name": "Berlin plant"}
JURONG2 = {"site_id": "sg-jurong-2", "country": "SG", "home_region": "ap-southeast"}


class Api:
    """A TestClient with one token per user of the test."""

    def __init__(self, client: TestClient, runtime: Runtime, tokens: dict[str, str]) -> None:
        self.client = client
        self.runtime = runtime
        self.tokens = tokens

    def call(self, method: str, path: str, user: str | None, json: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, json=json)

    def audit(self) -> list[tuple[str, str, str, list[str], dict[str, Any]]]:
        with psycopg.connect(self.runtime.settings.control_dsn) as conn:
            return conn.execute(
                "SELECT actor, action, target, regions, details FROM audit_log WHERE action LIKE 'registry.%'"
                " ORDER BY id"
            ).fetchall()

    def revision(self) -> int:
        with psycopg.connect(self.runtime.settings.control_dsn) as conn:
            return int(conn.execute("SELECT revision FROM registry_revision").fetchone()[0])  # type: ignore[index]  # registry_revision always has its row


USERS: dict[str, tuple[list[Role], list[str] | None]] = {
    "olga": ([Role.OPERATOR], None),  # every region
    "sam": ([Role.OPERATOR], ["ap-southeast"]),
    "erik": ([Role.ENGINEER], None),
    "eva": ([Role.OPERATOR], ["eu-central"]),
    "cora": ([Role.COMPLIANCE], None),
    "otto": ([Role.OPERATOR, Role.COMPLIANCE], None),
    "cleo": ([Role.COMPLIANCE], ["ap-southeast"]),
}


@pytest.fixture
def api(api_pg: PostgresServer, api_dsns: tuple[str, dict[str, str]], api_registry: Registry) -> Iterator[Api]:
    control = api_pg.create_database(f"registry_admin_{next(_n)}")
    migrate(control, "control", store="control")
    tokens: dict[str, str] = {}
    with psycopg.connect(control) as conn, conn.transaction():
        for name, (roles, regions) in USERS.items():
            users.create_user(conn, name=name, roles=roles, regions=regions, actor="test")
            tokens[name] = users.create_token(conn, user=name, actor="test")[1].text
    runtime = build_runtime(control, api_dsns[1], api_registry, FakePipeline())
    sync = RegistrySync(base=api_registry, control_dsn=control, refresh_s=60)
    runtime.registry = sync.load().registry
    sync.on_change(lambda registry: setattr(runtime, "registry", registry))
    runtime.registry_sync = sync
    try:
        yield Api(TestClient(create_app(runtime, settings=FAST)), runtime, tokens)
    finally:
        sync.stop()
        close_runtime(runtime)


def test_the_registry_reports_each_entry_with_its_source(api: Api) -> None:
    assert api.call("GET", "/registry", None).status_code == 401
    body = api.call("GET", "/registry", "erik").json()
    assert body["revision"] == 0 and body["decommissioned"] == []
    assert {s["id"]: s["source"] for s in body["sites"]}["de-munich"] == "file"
    munich = next(s for s in body["sites"] if s["id"] == "de-munich")
    assert munich["home_region"] == "eu-central" and munich["spec"]["country"] == "DE" and munich["updated_by"] is None

    created = api.call("POST", "/sites", "olga", BERLIN)
    assert created.status_code == 201, created.text
    change = created.json()
    assert change["action"] == "create" and change["revision"] == 1 and change["previous"] is None
    assert change["entry"]["source"] == "api" and change["entry"]["updated_by"] == "olga"
    assert change["entry"]["spec"]["name"] == "Berlin plant"
    updated = api.call(
        "PUT", "/sites/de-munich", "olga", {"country": "DE", "home_region": "eu-central", "name": "Munich (API)"}
    )
    assert updated.status_code == 200 and updated.json()["previous"]["name"] == "Munich plant"
    body = api.call("GET", "/registry", "erik").json()
    sources = {s["id"]: s["source"] for s in body["sites"]}
    assert body["revision"] == 2 and sources["de-berlin"] == "api" and sources["de-munich"] == "api"
    assert sources["us-detroit"] == "file"
    # the existing read endpoints answer from the effective registry too
    assert any(s["site_id"] == "de-berlin" for s in api.call("GET", "/sites", "erik").json())


def test_a_sparkplug_edge_nodes_device_is_registered_like_any_device(api: Api) -> None:
    """docs/sparkplug.md: the address maps (group, edge node, device) to the device; it decides the origin of the
    node's data, so changing it is a residency fact (compliance)."""
    address = {"group": "munich", "edge_node": "ignition-01", "device": "press-7"}
    device = {"device_id": "de-munich-spb-7", "site": "de-munich", "profile": "injection_press", "sparkplug": address}
    created = api.call("POST", "/devices", "olga", device)
    assert created.status_code == 201, created.text
    assert created.json()["entry"]["spec"]["sparkplug"] == address
    assert api.runtime.registry.sparkplug_device("munich", "ignition-01", "press-7") == "de-munich-spb-7"
    twice = api.call("POST", "/devices", "olga", {**device, "device_id": "de-munich-spb-8"})
    assert twice.status_code == 422 and "is already device 'de-munich-spb-7'" in twice.text
    moved = {"site": "de-munich", "profile": "injection_press", "sparkplug": {**address, "device": "press-8"}}
    assert api.call("PUT", "/devices/de-munich-spb-7", "olga", moved).status_code == 403
    assert api.call("PUT", "/devices/de-munich-spb-7", "otto", moved).status_code == 200


def test_devices_are_registered_changed_and_decommissioned_with_an_audit_row_each(api: Api) -> None:
    assert api.call("POST", "/sites", "olga", BERLIN).status_code == 201
    device = {"device_id": "de-berlin-cnc-01", "site": "de-berlin", "profile": "cnc_mill"}
    assert api.call("POST", "/devices", "olga", device).status_code == 201
    assert api.call("GET", "/devices/de-berlin-cnc-01", "erik").status_code == 200
    changed = api.call("PUT", "/devices/de-berlin-cnc-01", "otto", {"site": "de-berlin", "profile": "compressor"})
    assert changed.status_code == 200 and changed.json()["entry"]["spec"]["profile"] == "compressor"

    in_use = api.call("DELETE", "/sites/de-berlin", "olga")
    assert in_use.status_code == 409 and "de-berlin-cnc-01" in in_use.json()["detail"]
    gone = api.call("DELETE", "/devices/de-berlin-cnc-01", "olga")
    assert gone.status_code == 200 and gone.json()["entry"] is None and gone.json()["revision"] == 4
    assert api.call("GET", "/devices/de-berlin-cnc-01", "erik").status_code == 404
    assert api.call("DELETE", "/devices/fr-lyon-comp-01", "olga").status_code == 200  # a file device: tombstone
    assert api.call("DELETE", "/sites/de-berlin", "olga").status_code == 200

    body = api.call("GET", "/registry", "erik").json()
    assert {(d["kind"], d["id"], d["decommissioned_by"]) for d in body["decommissioned"]} == {
        ("device", "de-berlin-cnc-01", "olga"),
        ("device", "fr-lyon-comp-01", "olga"),
        ("site", "de-berlin", "olga"),
    }
    assert "fr-lyon-comp-01" not in {d["id"] for d in body["devices"]}

    audit = api.audit()
    assert [(a[0], a[1], a[2], a[3]) for a in audit] == [
        ("olga", "registry.site.create", "site:de-berlin", ["eu-central"]),
        ("olga", "registry.device.create", "device:de-berlin-cnc-01", ["eu-central"]),
        ("otto", "registry.device.update", "device:de-berlin-cnc-01", ["eu-central"]),
        ("olga", "registry.device.decommission", "device:de-berlin-cnc-01", ["eu-central"]),
        ("olga", "registry.device.decommission", "device:fr-lyon-comp-01", ["eu-central"]),
        ("olga", "registry.site.decommission", "site:de-berlin", ["eu-central"]),
    ]
    update = audit[2][4]
    assert update["revision"] == 3
    assert update["before"]["profile"] == "cnc_mill" and update["after"]["profile"] == "compressor"
    assert update["residency_facts"] == ["profile"]
    assert audit[3][4]["after"] is None


def test_duplicates_conflict_and_unknown_ids_are_not_found(api: Api) -> None:
    file_site = api.call("POST", "/sites", "olga", {**BERLIN, "site_id": "de-munich"})
    assert file_site.status_code == 409 and "'de-munich' already exists (file)" in file_site.json()["detail"]
    assert api.call("POST", "/sites", "olga", BERLIN).status_code == 201
    again = api.call("POST", "/sites", "olga", BERLIN)
    assert again.status_code == 409 and "(api)" in again.json()["detail"]
    device = {"device_id": "de-munich-cnc-01", "site": "de-munich", "profile": "cnc_mill"}
    assert api.call("POST", "/devices", "olga", device).status_code == 409
    missing = api.call("PUT", "/devices/nope-1", "olga", {"site": "de-munich", "profile": "cnc_mill"})
    assert missing.status_code == 404 and "unknown device 'nope-1'" in missing.json()["detail"]
    assert api.call("DELETE", "/sites/nope", "olga").status_code == 404
    assert api.revision() == 1 and len(api.audit()) == 1  # refused changes write nothing


@pytest.mark.parametrize(
    ("path", "body", "parameter", "message", "accepted"),
    [
        (
            "/devices",
            {"device_id": "x-1", "site": "nowhere", "profile": "cnc_mill"},
            "site",
            "'nowhere' is not a declared site",
            ["cn-shenzhen", "de-munich", "fr-lyon", "sg-jurong", "th-rayong", "us-detroit", "vn-hanoi"],
        ),
        (
            "/devices",
            {"device_id": "x-1", "site": "de-munich", "profile": "robot"},
            "profile",
            "'robot' is not a declared profile",
            ["cnc_mill", "compressor", "injection_press"],
        ),
        (
            "/sites",
            {**BERLIN, "home_region": "mars"},
            "home_region",
            "'mars' is not a declared region",
            ["ap-southeast", "cn-north", "eu-central", "us-east"],
        ),
    ],
)
def test_references_that_do_not_resolve_are_refused_naming_the_field_and_what_it_may_be(
    api: Api, path: str, body: dict[str, Any], parameter: str, message: str, accepted: list[str]
) -> None:
    answer = api.call("POST", path, "olga", body)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "detail": f"{parameter}: {message}",
        "parameter": parameter,
        "errors": [{"location": "body", "field": parameter, "message": message, "accepted": accepted}],
    }
    assert api.revision() == 0 and api.audit() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BERLIN, "country": "Germany"}, "country"),
        ({**BERLIN, "site_id": "de/berlin"}, "site_id"),
        ({**BERLIN, "safeguards": {"US": ["PINKY_SWEAR"]}}, "safeguards"),
        ({**BERLIN, "colour": "blue"}, "colour"),
        ({k: v for k, v in BERLIN.items() if k != "home_region"}, "home_region"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    answer = api.call("POST", "/sites", "olga", body)
    assert answer.status_code == 422
    assert any(err["field"].split(".")[0] == field for err in answer.json()["errors"]), answer.text
    assert field in answer.json()["detail"]


def test_an_operator_cannot_change_a_sites_country_and_a_compliance_officer_can_with_an_audit_row(api: Api) -> None:
    """Issue 12: an operator changed cn-shenzhen's country to US (200) and CN badges landed in us-east."""
    shenzhen = api.call("GET", "/registry", "erik").json()
    spec = next(s["spec"] for s in shenzhen["sites"] if s["id"] == "cn-shenzhen")
    moved = {**spec, "country": "US"}
    refused = api.call("PUT", "/sites/cn-shenzhen", "olga", moved)
    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert "country" in detail and "compliance" in detail and "'olga'" in detail
    assert api.revision() == 0 and api.audit() == []
    assert api.runtime.registry.sites["cn-shenzhen"].country == "CN"

    renamed = api.call("PUT", "/sites/cn-shenzhen", "olga", {**spec, "name": "Shenzhen (renamed)"})
    assert renamed.status_code == 200, renamed.text  # not a residency fact: operators keep doing it

    accepted = api.call("PUT", "/sites/cn-shenzhen", "cora", {**moved, "name": "Shenzhen (renamed)"})
    assert accepted.status_code == 200, accepted.text
    assert api.runtime.registry.sites["cn-shenzhen"].country == "US"
    actor, action, target, regions, details = api.audit()[-1]
    assert (actor, action, target, regions) == ("cora", "registry.site.update", "site:cn-shenzhen", ["cn-north"])
    assert details["before"]["country"] == "CN" and details["after"]["country"] == "US"
    assert details["residency_facts"] == ["country"]


@pytest.mark.parametrize(
    ("change", "facts"),
    [
        ({"home_region": "us-east"}, ["home_region"]),
        ({"safeguards": {"US": ["CN_SECURITY_ASSESSMENT"]}}, ["safeguards"]),
        ({"entity": {"ciio": False, "public_scope": False}}, ["entity"]),
        ({"volume": {"individuals_ytd": 5, "sensitive_individuals_ytd": 0}}, ["volume"]),
        ({"purpose": "hr_management"}, ["purpose"]),
        ({"country": "US", "home_region": "us-east"}, ["country", "home_region"]),
    ],
)
def test_every_residency_fact_of_a_site_needs_the_compliance_role(
    api: Api, change: dict[str, Any], facts: list[str]
) -> None:
    spec = next(s["spec"] for s in api.call("GET", "/registry", "erik").json()["sites"] if s["id"] == "cn-shenzhen")
    refused = api.call("PUT", "/sites/cn-shenzhen", "olga", {**spec, **change})
    assert refused.status_code == 403, refused.text
    assert f"changing {', '.join(facts)} of site 'cn-shenzhen'" in refused.json()["detail"]
    assert api.call("PUT", "/sites/cn-shenzhen", "otto", {**spec, **change}).status_code == 200  # both roles
    assert api.audit()[-1][4]["residency_facts"] == facts


def test_a_devices_profile_and_site_are_residency_facts(api: Api) -> None:
    device = {"site": "de-munich", "profile": "compressor"}
    refused = api.call("PUT", "/devices/de-munich-cnc-01", "olga", device)
    assert refused.status_code == 403 and "changing profile of device 'de-munich-cnc-01'" in refused.json()["detail"]
    moved = api.call("PUT", "/devices/de-munich-cnc-01", "olga", {"site": "fr-lyon", "profile": "cnc_mill"})
    assert moved.status_code == 403 and "changing site of device" in moved.json()["detail"]
    described = api.call(
        "PUT",
        "/devices/de-munich-cnc-01",
        "olga",
        {"site": "de-munich", "profile": "cnc_mill", "description": "line 3"},
    )
    assert described.status_code == 200, described.text
    assert api.call("PUT", "/devices/de-munich-cnc-01", "cora", device).status_code == 200
    # operators still register sites and devices; a compliance officer alone does not
    assert api.call("POST", "/sites", "olga", BERLIN).status_code == 201
    assert (
        api.call(
            "POST", "/devices", "cora", {"device_id": "de-berlin-x", "site": "de-berlin", "profile": "cnc_mill"}
        ).status_code
        == 403
    )
    # the compliance officer's region scope applies as well
    assert (
        api.call("PUT", "/devices/de-munich-cnc-01", "cleo", {"site": "de-munich", "profile": "cnc_mill"}).status_code
        == 403
    )


def test_only_operators_change_the_registry(api: Api) -> None:
    assert api.call("POST", "/sites", None, BERLIN).status_code == 401
    refused = api.call("POST", "/sites", "erik", BERLIN)
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert (
        api.call("PUT", "/sites/de-munich", "erik", {"country": "DE", "home_region": "eu-central"}).status_code == 403
    )
    assert api.call("DELETE", "/devices/de-munich-cnc-01", "erik").status_code == 403
    assert api.revision() == 0 and api.audit() == []


def test_operators_change_only_what_is_in_their_regions(api: Api) -> None:
    # sam acts for ap-southeast only
    outside = api.call("POST", "/sites", "sam", BERLIN)
    assert outside.status_code == 403 and "eu-central" in outside.json()["detail"]
    assert (
        api.call("PUT", "/sites/de-munich", "sam", {"country": "DE", "home_region": "ap-southeast"}).status_code == 403
    )  # the site's current home region is not his
    assert api.call("POST", "/sites", "sam", JURONG2).status_code == 201
    move = api.call("PUT", "/sites/sg-jurong-2", "sam", {"country": "SG", "home_region": "eu-central"})
    assert move.status_code == 403 and "eu-central" in move.json()["detail"]  # the new home region is not his
    assert (
        api.call(
            "POST", "/devices", "sam", {"device_id": "de-x-1", "site": "de-munich", "profile": "cnc_mill"}
        ).status_code
        == 403
    )
    assert (
        api.call(
            "POST", "/devices", "sam", {"device_id": "sg-x-1", "site": "sg-jurong-2", "profile": "cnc_mill"}
        ).status_code
        == 201
    )
    # a device moved to a site of another region needs both regions
    assert api.call("PUT", "/devices/sg-x-1", "sam", {"site": "de-munich", "profile": "cnc_mill"}).status_code == 403
    assert api.call("PUT", "/devices/sg-x-1", "eva", {"site": "de-munich", "profile": "cnc_mill"}).status_code == 403
    assert api.call("PUT", "/devices/sg-x-1", "otto", {"site": "de-munich", "profile": "cnc_mill"}).status_code == 200
    assert api.call("DELETE", "/devices/de-munich-cnc-01", "sam").status_code == 403
    assert api.call("DELETE", "/devices/de-munich-cnc-01", "eva").status_code == 200
    audit = api.audit()
    assert [(a[0], a[1], a[3]) for a in audit] == [
        ("sam", "registry.site.create", ["ap-southeast"]),
        ("sam", "registry.device.create", ["ap-southeast"]),
        ("otto", "registry.device.update", ["ap-southeast", "eu-central"]),
        ("eva", "registry.device.decommission", ["eu-central"]),
    ]
    assert api.revision() == 4
