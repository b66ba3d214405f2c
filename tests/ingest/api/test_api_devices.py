"""GET /devices, /devices/{id}, /devices/{id}/latest, /regions and /sites against the seeded stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from ingest.auth.roles import Role
from ingest.registry import Registry
from tests.ingest.api.api_seed import BADGE_TOKEN, LAST_SEEN, REVISION, T0


def test_devices_lists_the_registry_in_id_order(client: TestClient, api_registry: Registry) -> None:
    body = client.get("/api/v1/devices").json()
    assert body["total"] == len(api_registry.devices) == 14
    assert [d["device_id"] for d in body["items"]] == sorted(api_registry.devices)
    page = client.get("/api/v1/devices", params={"limit": 3, "offset": 2}).json()
    assert (page["total"], page["limit"], page["offset"]) == (14, 3, 2)
    assert [d["device_id"] for d in page["items"]] == sorted(api_registry.devices)[2:5]


def test_devices_filters(client: TestClient) -> None:
    by_site = client.get("/api/v1/devices", params={"site": "de-munich"}).json()
    assert [d["device_id"] for d in by_site["items"]] == ["de-munich-cnc-01", "de-munich-press-01"]
    by_country = client.get("/api/v1/devices", params={"country": "cn"}).json()
    assert by_country["total"] == 2
    assert {d["country"] for d in by_country["items"]} == {"CN"}
    both = client.get("/api/v1/devices", params={"country": "FR", "site": "de-munich"}).json()
    assert both == {"total": 0, "limit": 100, "offset": 0, "items": []}


def test_devices_bad_filters_name_the_parameter(client: TestClient) -> None:
    response = client.get("/api/v1/devices", params={"site": "atlantis"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "site"
    assert response.json()["detail"].startswith("site: unknown site 'atlantis'")
    response = client.get("/api/v1/devices", params={"country": "DEU"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "country"
    assert client.get("/api/v1/devices", params={"limit": 0}).status_code == 422


def test_device_joins_progress_and_latest_gateway_status(client: TestClient) -> None:
    munich = client.get("/api/v1/devices/de-munich-cnc-01").json()
    assert munich["site"] == "de-munich"
    assert munich["site_name"] == "Munich plant"
    assert (munich["country"], munich["home_region"], munich["profile"]) == ("DE", "eu-central", "cnc_mill")
    # gw-munich-1 (online, 30 s ago) listed it after gw-munich-old (offline, a day ago)
    assert munich["status"] == "online"
    assert munich["gateway"]["gateway_id"] == "gw-munich-1"
    assert munich["progress"]["last_seq"] == 2
    assert munich["progress"]["batches"] == 2
    assert munich["progress"]["readings"] == 9
    assert datetime.fromisoformat(munich["progress"]["last_seen_at"]) == LAST_SEEN

    shenzhen = client.get("/api/v1/devices/cn-shenzhen-cnc-01").json()
    assert shenzhen["status"] == "offline"
    assert shenzhen["gateway"]["reason"] == "connection lost (will)"
    assert shenzhen["progress"]["last_seq"] == 7

    lyon = client.get("/api/v1/devices/fr-lyon-cnc-01").json()
    assert (lyon["status"], lyon["gateway"], lyon["progress"]) == ("unknown", None, None)


def test_unknown_device_is_404(client: TestClient) -> None:
    for path in ("/api/v1/devices/nope", "/api/v1/devices/nope/latest", "/api/v1/devices/nope/series"):
        response = client.get(path, params={"name": "power_kw"} if path.endswith("series") else None)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "unknown device 'nope'"}


def test_latest_reads_the_home_region_by_default(client: TestClient) -> None:
    body = client.get("/api/v1/devices/de-munich-cnc-01/latest").json()
    assert body["device_id"] == "de-munich-cnc-01"
    assert body["region"] == "eu-central"
    fields = {f["name"]: f for f in body["fields"]}
    assert sorted(fields) == ["operator_badge", "spindle_speed_rpm", "spindle_temp_c"]
    temp = fields["spindle_temp_c"]
    assert temp["value"] == 46.0
    assert datetime.fromisoformat(temp["ts"]) == T0 + timedelta(seconds=300)
    assert (temp["category"], temp["unit"], temp["transform"]) == ("machine", "degC", None)
    assert temp["policy_revision"] == REVISION
    assert temp["region"] == "eu-central"
    assert len(temp["decision_id"]) == 36
    badge = fields["operator_badge"]
    assert (badge["value"], badge["category"], badge["transform"]) == (BADGE_TOKEN, "personal", "pseudonymized")
    assert fields["spindle_speed_rpm"]["value"] == 1200.0


def test_latest_in_another_region(client: TestClient) -> None:
    body = client.get("/api/v1/devices/de-munich-cnc-01/latest", params={"region": "us-east"}).json()
    assert body["region"] == "us-east"
    assert [(f["name"], f["value"], f["region"]) for f in body["fields"]] == [("spindle_speed_rpm", 1200.0, "us-east")]
    empty = client.get("/api/v1/devices/de-munich-cnc-01/latest", params={"region": "cn-north"}).json()
    assert empty == {"device_id": "de-munich-cnc-01", "region": "cn-north", "fields": []}


def test_latest_unknown_region_is_422_listing_the_regions(client: TestClient) -> None:
    response = client.get("/api/v1/devices/de-munich-cnc-01/latest", params={"region": "mars-1"})
    assert response.status_code == 422
    regions = ["ap-southeast", "cn-north", "eu-central", "us-east"]
    assert response.json() == {
        "detail": "region: unknown region 'mars-1' (known: ap-southeast, cn-north, eu-central, us-east)",
        "parameter": "region",
        "errors": [
            {
                "location": "query",
                "field": "region",
                "accepted": regions,
                "message": "unknown region 'mars-1' (known: ap-southeast, cn-north, eu-central, us-east)",
            }
        ],
    }


def test_regions_and_sites(client: TestClient) -> None:
    regions = {r["name"]: r for r in client.get("/api/v1/regions").json()}
    assert sorted(regions) == ["ap-southeast", "cn-north", "eu-central", "us-east"]
    assert regions["us-east"]["analytics"] is True
    assert regions["eu-central"]["analytics"] is False
    assert regions["cn-north"]["country"] == "CN"
    assert all(r["configured"] for r in regions.values())

    sites = {s["site_id"]: s for s in client.get("/api/v1/sites").json()}
    assert len(sites) == 7
    assert sites["cn-shenzhen"]["ciio"] is True
    assert sites["cn-shenzhen"]["candidate_regions"] == ["cn-north", "us-east"]
    assert sites["us-detroit"]["candidate_regions"] == ["us-east"]
    assert sites["fr-lyon"]["devices"] == 2
    assert sites["fr-lyon"]["home_region"] == "eu-central"


def test_latest_redacts_personal_values_of_regions_outside_the_callers_set(
    client: TestClient, token_for: Callable[..., dict[str, str]]
) -> None:
    path = "/api/v1/devices/de-munich-cnc-01/latest"
    for scope in ({"us-east"}, set()):
        body = client.get(path, headers=token_for(Role.ENGINEER, regions=scope)).json()
        fields = {f["name"]: f for f in body["fields"]}
        assert (fields["operator_badge"]["value"], fields["operator_badge"]["withheld"]) == (None, True)
        assert fields["operator_badge"]["category"] == "personal"  # that it exists is not withheld
        assert (fields["spindle_temp_c"]["value"], fields["spindle_temp_c"]["withheld"]) == (46.0, False)
    allowed = client.get(path, headers=token_for(Role.ENGINEER, regions={"eu-central"})).json()
    badge = next(f for f in allowed["fields"] if f["name"] == "operator_badge")
    assert (badge["value"], badge["withheld"]) == (BADGE_TOKEN, False)
