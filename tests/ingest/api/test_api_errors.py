"""One error body for every 4xx (issue 16): ErrorPublic, documented in the OpenAPI schema; 422 names every
field at fault and lists the accepted values of a closed set (regions, countries, categories, ...); never
pydantic's raw error list; 405 with ``Allow``; numbers are not dates (issue 12's schemathesis findings)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.registry import CATEGORIES, iso_countries

REGIONS = ["ap-southeast", "cn-north", "eu-central", "us-east"]


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and set(body) <= {"detail", "parameter", "store", "errors"}
    assert "'input'" not in response.text and '"loc"' not in response.text  # not pydantic's raw errors
    problem: dict[str, Any] = body
    return problem


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/decisions?region=mars",
        "/api/v1/decisions?region=",
        "/api/v1/devices/de-munich-cnc-01/latest?region=",
        "/api/v1/audit?region=mars",
    ],
)
def test_an_unknown_or_empty_region_is_422_listing_the_regions(client: TestClient, path: str) -> None:
    body = error(client.get(path), 422)
    assert body["parameter"] == "region"
    assert body["errors"] == [
        {"location": "query", "field": "region", "message": body["errors"][0]["message"], "accepted": REGIONS}
    ]
    assert "unknown region" in body["detail"] and "eu-central" in body["detail"]


def test_a_literal_parameter_lists_its_values(client: TestClient) -> None:
    body = error(client.get("/api/v1/decisions", params={"category": "secret"}), 422)
    assert body["parameter"] == "category" and body["errors"][0]["accepted"] == list(CATEGORIES)
    assert body["detail"].startswith("category: ") and "(accepted: machine, personal" in body["detail"]


@pytest.mark.parametrize("value", ["0.5", "0", "1e9", "-3"])
def test_a_number_is_not_a_date(client: TestClient, value: str) -> None:
    body = error(client.get("/api/v1/metrics/power_kw/aggregate", params={"start": value}), 422)
    assert body["parameter"] == "start" and "not a number" in body["detail"]
    body = error(client.get("/api/v1/audit", params={"until": value}), 422)
    assert body["parameter"] == "until"


def test_a_body_field_names_its_path_and_the_closed_set(client: TestClient) -> None:
    site = {"site_id": "xx-1", "country": "XX", "home_region": "eu-central"}
    body = error(client.post("/api/v1/sites", json=site), 422)
    assert body["parameter"] == "country" and body["errors"][0]["location"] == "body"
    assert body["errors"][0]["accepted"] == list(iso_countries()) and len(iso_countries()) == 249
    assert "'XX' is not an ISO 3166-1 alpha-2 country code" in body["detail"]
    body = error(
        client.post("/api/v1/sites", json={**site, "country": "DE", "volume": {"individuals_ytd": False}}), 422
    )
    assert body["errors"][0]["field"] == "volume.individuals_ytd"  # a boolean is no count
    body = error(client.post("/api/v1/users", json={"name": "u-x", "roles": ["engineer"], "regions": [""]}), 422)
    assert body["parameter"] == "regions" and body["errors"][0]["accepted"] == [*REGIONS, "*"]
    body = error(client.post("/api/v1/users", json={"name": "u-x", "roles": ["boss"], "regions": "*"}), 422)
    assert body["errors"][0]["field"] == "roles.0"
    assert body["errors"][0]["accepted"] == ["operator", "compliance", "engineer", "admin"]


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"{not json", b""])
def test_a_body_that_is_not_json_is_422(client: TestClient, content: bytes) -> None:
    response = client.post("/api/v1/policy/activate", content=content, headers={"Content-Type": "application/json"})
    body = error(response, 422)
    assert body["errors"][0]["location"] == "body"


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    for path, allowed in (
        ("/api/v1/devices", "GET, POST"),
        ("/api/v1/devices/de-munich-cnc-01", "DELETE, GET, PUT"),
        ("/api/v1/users/x", "DELETE, GET, PATCH"),
        ("/api/v1/policy/drafts", "GET, POST"),
    ):
        response = client.options(path)
        error(response, 405)
        assert response.headers["allow"] == allowed


def test_the_schema_documents_one_error_model_and_the_closed_sets(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "ValidationError" not in schema["components"]["schemas"]
    assert "x-closed-set" not in str(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status[0] in "45" and path != "/api/v1/health":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorPublic"
                    }, (method, path, status)
    decisions = {p["name"]: p for p in schema["paths"]["/api/v1/decisions"]["get"]["parameters"]}
    assert decisions["region"]["schema"]["anyOf"][0]["enum"] == REGIONS
    series = {p["name"]: p for p in schema["paths"]["/api/v1/devices/{device_id}/series"]["get"]["parameters"]}
    assert series["region"]["schema"]["anyOf"][0]["enum"] == [*REGIONS, "all"]
    site = schema["components"]["schemas"]["Site"]["properties"]
    assert site["home_region"]["enum"] == REGIONS and len(site["country"]["enum"]) == 249
    assert "FieldErrorPublic" in schema["components"]["schemas"]
    quarantine = schema["paths"]["/api/v1/quarantine/{quarantine_id}"]["get"]["responses"]
    assert "404" in quarantine


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/gaps",
        "/api/v1/decisions",
        "/api/v1/quarantine",
        "/api/v1/rejections",
        "/api/v1/devices",
        "/api/v1/policy/drafts",
    ],
)
def test_an_offset_past_a_bigint_is_422_not_a_server_error(client: TestClient, path: str) -> None:
    """schemathesis: offset=1219376564266238927368582391606018048 reached PostgreSQL and answered 500."""
    body = error(client.get(path, params={"offset": 10**36}), 422)
    assert body["parameter"] == "offset"
