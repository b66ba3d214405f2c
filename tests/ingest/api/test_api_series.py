"""GET /devices/{id}/series: date_bin buckets computed from the seeded readings, and every bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from ingest.api.service.readings import bucket_count
from ingest.auth.roles import Role
from tests.ingest.api.api_seed import BADGE_TOKEN, T0

SERIES = "/api/v1/devices/de-munich-cnc-01/series"


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _points(body: dict[str, Any]) -> list[tuple[datetime, float, float, float, int]]:
    return [(datetime.fromisoformat(p["ts"]), p["min"], p["max"], p["avg"], p["count"]) for p in body["points"]]


def test_one_minute_buckets(client: TestClient) -> None:
    response = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(360)})
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["category"], body["unit"], body["region"], body["bucket"]) == (
        "spindle_temp_c",
        "machine",
        "degC",
        "eu-central",
        "1m",
    )
    assert datetime.fromisoformat(body["start"]) == T0
    assert datetime.fromisoformat(body["end"]) == T0 + timedelta(minutes=6)
    # readings: 40 @ +10 s, 42 @ +40 s, 50 @ +65 s, 44 @ +299 s, 46 @ +300 s
    assert _points(body) == [
        (T0, 40.0, 42.0, 41.0, 2),
        (T0 + timedelta(minutes=1), 50.0, 50.0, 50.0, 1),
        (T0 + timedelta(minutes=4), 44.0, 44.0, 44.0, 1),
        (T0 + timedelta(minutes=5), 46.0, 46.0, 46.0, 1),
    ]


def test_five_minute_and_hour_buckets(client: TestClient) -> None:
    five = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(600), "bucket": "5m"})
    assert _points(five.json()) == [
        (T0, 40.0, 50.0, 44.0, 4),
        (T0 + timedelta(minutes=5), 46.0, 46.0, 46.0, 1),
    ]
    hour = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(3600), "bucket": "1h"})
    assert _points(hour.json()) == [(T0, 40.0, 50.0, 44.4, 5)]


def test_window_bounds_are_start_inclusive_end_exclusive(client: TestClient) -> None:
    body = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(40), "end": _at(300)}).json()
    assert [p[4] for p in _points(body)] == [1, 1, 1]  # 42 @ +40 s in; 46 @ +300 s out
    assert [p[1] for p in _points(body)] == [42.0, 50.0, 44.0]


def test_naive_datetimes_are_utc(client: TestClient) -> None:
    naive_start = T0.replace(tzinfo=None)
    naive_end = naive_start + timedelta(minutes=1)
    params = {"name": "spindle_temp_c", "start": naive_start.isoformat(), "end": naive_end.isoformat()}
    body = client.get(SERIES, params=params).json()
    assert _points(body) == [(T0, 40.0, 42.0, 41.0, 2)]


def test_other_region(client: TestClient) -> None:
    body = client.get(
        SERIES, params={"name": "spindle_speed_rpm", "start": _at(0), "end": _at(600), "region": "us-east"}
    ).json()
    assert body["region"] == "us-east"
    assert _points(body) == [(T0 + timedelta(minutes=5), 1200.0, 1200.0, 1200.0, 1)]


def test_default_window_is_the_last_hour(client: TestClient) -> None:
    before = datetime.now(UTC)
    body = client.get(SERIES, params={"name": "spindle_temp_c"}).json()
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert end - start == timedelta(hours=1)
    assert before <= end <= datetime.now(UTC)
    assert body["points"] == []  # the seeded readings are older
    only_start = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0)}).json()
    assert datetime.fromisoformat(only_start["end"]) == T0 + timedelta(hours=1)
    assert len(only_start["points"]) == 4
    only_end = client.get(SERIES, params={"name": "spindle_temp_c", "end": _at(60)}).json()
    assert datetime.fromisoformat(only_end["start"]) == T0 + timedelta(seconds=60) - timedelta(hours=1)
    assert _points(only_end) == [(T0, 40.0, 42.0, 41.0, 2)]


def _error(client: TestClient, status: int, **params: str) -> dict[str, Any]:
    response = client.get(SERIES, params=params)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_unknown_field_names_the_profile(client: TestClient) -> None:
    body = _error(client, 400, name="barrel_temp_c")
    assert body["parameter"] == "name"
    assert body["detail"].startswith(
        "name: unknown field 'barrel_temp_c' for device 'de-munich-cnc-01' (profile cnc_mill: "
    )
    assert "spindle_temp_c" in body["detail"]


def test_text_field_is_not_numeric(client: TestClient) -> None:
    body = _error(client, 400, name="operator_badge", start=_at(0), end=_at(600))
    assert body == {
        "detail": "name: field 'operator_badge' of device 'de-munich-cnc-01' holds text values, not numbers",
        "parameter": "name",
    }


def test_inverted_and_empty_ranges(client: TestClient) -> None:
    body = _error(client, 400, name="spindle_temp_c", start=_at(600), end=_at(0))
    assert body["parameter"] == "start"
    assert "must be before end" in body["detail"]
    assert _error(client, 400, name="spindle_temp_c", start=_at(0), end=_at(0))["parameter"] == "start"


def test_too_many_buckets(client: TestClient) -> None:
    body = _error(client, 400, name="spindle_temp_c", start=_at(0), end=_at(86400 * 30), bucket="1m")
    assert body["parameter"] == "bucket"
    assert "43200 points (limit 10000)" in body["detail"]
    # exactly at the cap is fine: 10,000 aligned one-minute buckets
    ok = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(60 * 10_000)})
    assert ok.status_code == 200
    assert len(ok.json()["points"]) == 4


def test_bad_bucket_missing_name_and_bad_dates_are_422(client: TestClient) -> None:
    assert _error(client, 422, name="spindle_temp_c", bucket="2m")["errors"][0]["field"] == "bucket"
    assert _error(client, 422)["errors"][0]["field"] == "name"
    assert _error(client, 422, name="spindle_temp_c", start="yesterday")["errors"][0]["field"] == "start"
    assert _error(client, 422, name="spindle_temp_c", region="moon")["parameter"] == "region"


def test_bucket_count_counts_aligned_buckets() -> None:
    minute = timedelta(minutes=1)
    assert bucket_count(T0, T0 + 10 * minute, minute) == 10
    assert bucket_count(T0 + timedelta(seconds=30), T0 + 10 * minute, minute) == 10
    assert bucket_count(T0 + timedelta(seconds=30), T0 + 10 * minute + timedelta(seconds=1), minute) == 11
    assert bucket_count(T0, T0 + timedelta(seconds=1), timedelta(days=1)) == 1


# --- rollups, raw pages, region=all, caller regions ------------------------------------------------


def test_whole_buckets_come_from_the_rollups(client: TestClient) -> None:
    aligned = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(360)}).json()
    assert aligned["rollup"] == "readings_1m"
    hour = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(0), "end": _at(7200), "bucket": "1h"})
    assert hour.json()["rollup"] == "readings_1h"
    # a window shorter than one rollup bucket is answered from raw rows only
    short = client.get(SERIES, params={"name": "spindle_temp_c", "start": _at(10), "end": _at(50)}).json()
    assert short["rollup"] is None
    assert _points(short) == [(T0, 40.0, 42.0, 41.0, 2)]


def test_day_buckets_from_hour_rollups(client: TestClient) -> None:
    day_start = T0.replace(hour=0)
    body = client.get(
        SERIES,
        params={
            "name": "spindle_temp_c",
            "start": day_start.isoformat(),
            "end": (day_start + timedelta(days=2)).isoformat(),
            "bucket": "1d",
        },
    ).json()
    assert body["rollup"] == "readings_1h"
    assert _points(body) == [(day_start, 40.0, 50.0, 44.4, 5)]


def test_raw_readings_are_paginated(client: TestClient) -> None:
    params = {"name": "spindle_temp_c", "start": _at(0), "end": _at(600), "bucket": "raw", "limit": "2"}
    first = client.get(SERIES, params=params).json()
    assert (first["bucket"], first["limit"], first["points"]) == ("raw", 2, [])
    assert [(r["seq"], r["idx"], r["value"]) for r in first["readings"]] == [(1, 0, 40.0), (1, 1, 42.0)]
    second = client.get(SERIES, params={**params, "cursor": first["next_cursor"]}).json()
    assert [r["value"] for r in second["readings"]] == [50.0, 44.0]
    third = client.get(SERIES, params={**params, "cursor": second["next_cursor"]}).json()
    assert [r["value"] for r in third["readings"]] == [46.0]
    assert third["next_cursor"] is None
    # text fields are readable raw (pseudonymized tokens here)
    badge = client.get(SERIES, params={**params, "name": "operator_badge", "limit": "10"}).json()
    assert [(r["value"], r["transform"]) for r in badge["readings"]] == [
        ("ps_0000aa", "pseudonymized"),
        (BADGE_TOKEN, "pseudonymized"),
    ]


def test_raw_bad_parameters(client: TestClient) -> None:
    body = _error(client, 400, name="spindle_temp_c", bucket="raw", limit="10001")
    assert body == {"detail": "limit: at most 10000 raw points per page (limit 10000)", "parameter": "limit"}
    assert _error(client, 400, name="spindle_temp_c", bucket="raw", cursor="not-a-cursor")["parameter"] == "cursor"
    assert _error(client, 422, name="spindle_temp_c", bucket="raw", limit="0")["errors"][0]["field"] == "limit"
    assert _error(client, 400, name="spindle_temp_c", bucket="raw", start=_at(5), end=_at(1))["parameter"] == "start"


def test_region_all_combines_copies_without_counting_twice(client: TestClient) -> None:
    # spindle_speed_rpm 1200 @ +300 s is stored in eu-central (home) and copied to us-east (analytics)
    params = {"name": "spindle_speed_rpm", "start": _at(0), "end": _at(600), "region": "all"}
    body = client.get(SERIES, params=params).json()
    assert (body["region"], body["regions"]) == ("all", ["eu-central", "us-east"])
    assert _points(body) == [(T0 + timedelta(minutes=5), 1200.0, 1200.0, 1200.0, 1)]


def test_region_all_is_for_bucketed_machine_data(client: TestClient) -> None:
    personal = _error(client, 400, name="operator_badge", region="all")
    assert personal["parameter"] == "region"
    assert "only machine data is combined across regions" in personal["detail"]
    assert _error(client, 400, name="spindle_temp_c", region="all", bucket="raw")["parameter"] == "region"


def test_personal_fields_need_the_region_in_the_callers_set(
    client: TestClient, token_for: Callable[..., dict[str, str]]
) -> None:
    params = {"name": "operator_badge", "start": _at(0), "end": _at(600), "bucket": "raw"}
    us_only = token_for(Role.ENGINEER, regions={"us-east"})
    denied = client.get(SERIES, params=params, headers=us_only)
    assert denied.status_code == 403
    user = denied.json()["detail"].split("user '")[1].split("'")[0]
    assert denied.json()["detail"] == (
        "field 'operator_badge' of device 'de-munich-cnc-01' is personal data stored in region 'eu-central'; "
        f"user '{user}' is authorised for personal data of: us-east (the user's region scope)"
    )
    no_region = token_for(Role.ENGINEER, regions=set())
    assert client.get(SERIES, params=params, headers=no_region).status_code == 403
    both = token_for(Role.ENGINEER, regions={"eu-central", "us-east"})
    assert client.get(SERIES, params=params, headers=both).status_code == 200
    assert client.get(SERIES, params=params, headers=token_for(Role.ENGINEER)).status_code == 200  # every region
    # machine fields are not restricted
    machine = {"name": "spindle_temp_c", "start": _at(0), "end": _at(600)}
    assert client.get(SERIES, params=machine, headers=no_region).status_code == 200
