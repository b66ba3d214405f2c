"""GET /decisions, /flows and /rejections against the seeded control store."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.ingest.api.api_seed import DECISION_IDS, DECISIONS, OLD_REVISION, REVISION

NEWEST_FIRST = [d.key for d in sorted(DECISIONS, key=lambda d: d.age_s)]
KEY_OF = {str(uuid): key for key, uuid in DECISION_IDS.items()}


def _keys(body: dict[str, Any]) -> list[str]:
    return [KEY_OF[item["decision_id"]] for item in body["items"]]


def test_decisions_newest_first(client: TestClient) -> None:
    body = client.get("/api/v1/decisions").json()
    assert (body["limit"], body["offset"]) == (50, 0)
    assert _keys(body) == NEWEST_FIRST
    page = client.get("/api/v1/decisions", params={"limit": 2, "offset": 1}).json()
    assert _keys(page) == NEWEST_FIRST[1:3]


def test_decision_row_carries_reasons_requires_transforms_and_revision(client: TestClient) -> None:
    body = client.get("/api/v1/decisions", params={"region": "us-east", "category": "personal"}).json()
    assert len(body["items"]) == 1
    row = body["items"][0]
    assert row["decision_id"] == str(DECISION_IDS["de1-personal-us"])
    assert (row["device_id"], row["seq"], row["site_id"]) == ("de-munich-cnc-01", 1, "de-munich")
    assert (row["origin_country"], row["destination_country"], row["outcome"], row["allow"]) == (
        "DE",
        "US",
        "denied",
        False,
    )
    assert row["requires"] == ["SCC", "BCR"]
    assert row["reasons"] == ["GDPR Art 46: no safeguard in force for US recipient"]
    assert row["transforms"] == {}
    assert row["policy_revision"] == REVISION
    assert row["readings"] == 1
    assert row["input"] is None

    transformed = client.get("/api/v1/decisions", params={"outcome": "transformed"}).json()["items"]
    assert [t["transforms"] for t in transformed] == [{"operator_badge": "pseudonymize"}]


def test_decision_filters(client: TestClient) -> None:
    assert _keys(client.get("/api/v1/decisions", params={"outcome": "denied"}).json()) == [
        "cn7-machine-us",
        "de1-personal-us",
    ]
    assert _keys(client.get("/api/v1/decisions", params={"origin": "cn"}).json()) == [
        "cn7-machine-us",
        "cn7-machine-cn",
    ]
    assert _keys(client.get("/api/v1/decisions", params={"device_id": "fr-lyon-cnc-01"}).json()) == [
        "fr1-machine-eu-old"
    ]
    combined = client.get(
        "/api/v1/decisions", params={"origin": "DE", "region": "eu-central", "category": "machine"}
    ).json()
    assert _keys(combined) == ["de2-machine-eu", "de1-machine-eu"]
    assert client.get("/api/v1/decisions", params={"device_id": "nope"}).json()["items"] == []


def test_decision_input_on_request(client: TestClient) -> None:
    body = client.get("/api/v1/decisions", params={"device_id": "fr-lyon-cnc-01", "include_input": True}).json()
    row = body["items"][0]
    assert row["input"] == {"origin": "FR", "destination": "DE", "category": "machine"}
    assert row["policy_revision"] == OLD_REVISION


def test_decision_bad_filters(client: TestClient) -> None:
    response = client.get("/api/v1/decisions", params={"region": "atlantis"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "region"
    for params in ({"outcome": "maybe"}, {"category": "secret"}, {"origin": "DEU"}, {"limit": 5000}):
        response = client.get("/api/v1/decisions", params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["location"] == "query"
        assert response.json()["errors"][0]["field"] == response.json()["parameter"] == next(iter(params))


def test_flows_over_the_default_window(client: TestClient) -> None:
    body = client.get("/api/v1/flows").json()
    assert body["window_s"] == 300
    flows = [
        (f["origin_country"], f["region"], f["category"], f["outcome"], f["decisions"], f["readings"])
        for f in body["flows"]
    ]
    assert flows == [
        ("CN", "cn-north", "machine", "stored", 1, 3),
        ("CN", "us-east", "machine", "denied", 1, 3),
        ("DE", "eu-central", "machine", "stored", 2, 9),
        ("DE", "eu-central", "personal", "transformed", 1, 1),
        ("DE", "us-east", "machine", "stored", 1, 5),
        ("DE", "us-east", "personal", "denied", 1, 1),
    ]
    totals = {t["region"]: t for t in body["totals"]}
    assert list(totals) == ["eu-central", "us-east", "cn-north", "ap-southeast"]
    assert (totals["eu-central"]["decisions"], totals["eu-central"]["readings"]) == (3, 10)
    assert totals["eu-central"]["outcomes"] == {
        "stored": {"decisions": 2, "readings": 9},
        "transformed": {"decisions": 1, "readings": 1},
        "denied": {"decisions": 0, "readings": 0},
    }
    assert totals["us-east"]["outcomes"]["denied"] == {"decisions": 2, "readings": 4}
    assert (totals["us-east"]["decisions"], totals["us-east"]["readings"]) == (3, 9)
    assert (totals["cn-north"]["decisions"], totals["cn-north"]["readings"]) == (1, 3)
    assert (totals["ap-southeast"]["decisions"], totals["ap-southeast"]["readings"]) == (0, 0)


def test_flows_wider_window_includes_older_decisions(client: TestClient) -> None:
    body = client.get("/api/v1/flows", params={"window_s": 7200}).json()
    assert ("FR", "eu-central", "machine", "stored", 1, 10) in [
        (f["origin_country"], f["region"], f["category"], f["outcome"], f["decisions"], f["readings"])
        for f in body["flows"]
    ]
    totals = {t["region"]: t for t in body["totals"]}
    assert (totals["eu-central"]["decisions"], totals["eu-central"]["readings"]) == (4, 20)
    assert client.get("/api/v1/flows", params={"window_s": 0}).status_code == 422


def test_rejections_with_counts(client: TestClient) -> None:
    body = client.get("/api/v1/rejections").json()
    assert body["counts"] == {"malformed": 2, "unknown_device": 1}
    assert body["total"] == 3
    assert [(r["code"], r["device_id"], r["seq"]) for r in body["items"]] == [
        ("unknown_device", None, None),
        ("malformed", "de-munich-cnc-01", 10),
        ("malformed", "de-munich-cnc-01", 9),
    ]
    first = body["items"][0]
    assert first["topic"] == "tele/v1/xx/gw-9/xx-ghost-01"
    assert (first["payload_bytes"], first["payload_kept"]) == (99, False)
    assert set(first) == {
        "id",
        "received_at",
        "topic",
        "device_id",
        "seq",
        "code",
        "detail",
        "payload_bytes",
        "payload_kept",
    }


def test_rejections_filter_and_pagination(client: TestClient) -> None:
    body = client.get("/api/v1/rejections", params={"code": "malformed", "limit": 1, "offset": 1}).json()
    assert body["total"] == 2
    assert body["counts"] == {"malformed": 2, "unknown_device": 1}
    assert [(r["detail"], r["seq"]) for r in body["items"]] == [("not JSON", 9)]
    none = client.get("/api/v1/rejections", params={"code": "oversized"}).json()
    assert (none["total"], none["items"]) == (0, [])


# --- totals, time filter, export -------------------------------------------------------------------


def test_decision_list_counts_every_match_and_filters_by_time(client: TestClient) -> None:
    from datetime import UTC, datetime

    everything = client.get("/api/v1/decisions", params={"limit": 2}).json()
    assert everything["total"] == len(DECISIONS) and len(everything["items"]) == 2
    assert client.get("/api/v1/decisions", params={"outcome": "denied"}).json()["total"] == 2
    times = [datetime.fromisoformat(d["decided_at"]) for d in client.get("/api/v1/decisions").json()["items"]]
    assert times[1] > times[2]
    cut = (times[2] + (times[1] - times[2]) / 2).astimezone(UTC)  # between the 2nd and 3rd newest
    recent = client.get("/api/v1/decisions", params={"since": cut.isoformat()}).json()
    assert (_keys(recent), recent["total"]) == (NEWEST_FIRST[:2], 2)
    older = client.get("/api/v1/decisions", params={"until": cut.isoformat()}).json()
    assert (_keys(older), older["total"]) == (NEWEST_FIRST[2:], len(DECISIONS) - 2)
    naive = client.get("/api/v1/decisions", params={"since": cut.replace(tzinfo=None).isoformat()}).json()
    assert naive["total"] == 2  # a naive time is UTC
    inverted = client.get("/api/v1/decisions", params={"since": cut.isoformat(), "until": cut.isoformat()})
    assert inverted.status_code == 400 and inverted.json()["parameter"] == "since"


def test_decision_export_streams_what_the_list_shows_as_csv_and_json_lines(client: TestClient) -> None:
    import csv
    import io
    import json

    params = {"origin": "DE"}
    listed = client.get("/api/v1/decisions", params={**params, "limit": 1000}).json()
    assert listed["total"] > 1
    as_csv = client.get("/api/v1/decisions/export", params={**params, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="decisions-' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["decision_id"] for r in rows] == [d["decision_id"] for d in listed["items"]]
    first = listed["items"][0]
    assert json.loads(rows[0]["reasons"]) == first["reasons"] and rows[0]["outcome"] == first["outcome"]
    assert rows[0]["origin_country"] == "DE" and int(rows[0]["readings"]) == first["readings"]
    as_jsonl = client.get("/api/v1/decisions/export", params={**params, "format": "jsonl", "include_input": "true"})
    assert as_jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [x["decision_id"] for x in lines] == [d["decision_id"] for d in listed["items"]]
    assert lines[0]["reasons"] == first["reasons"] and "input" in lines[0]
    none = client.get("/api/v1/decisions/export", params={"origin": "ZZ", "format": "csv"})
    assert none.status_code == 200 and none.text.splitlines() == [
        ",".join(
            [
                "decision_id",
                "decided_at",
                "device_id",
                "seq",
                "site_id",
                "origin_country",
                "category",
                "region",
                "destination_country",
                "outcome",
                "allow",
                "localization",
                "requires",
                "transforms",
                "reasons",
                "policy_revision",
                "readings",
            ]
        )
    ]
    assert client.get("/api/v1/decisions/export", params={"region": "mars"}).status_code == 422
