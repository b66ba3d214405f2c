"""GET /sites/{site}/summary and GET /metrics/{name}/aggregate against stores written by the real
RegionWriter with recent readings (the last hour), and rollup-vs-raw equivalence of the series service.

The Munich site's readings are in eu-central (home); us-east (analytics) holds a copy of part of the
machine readings of one device, as the policy's central copy would.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack import PostgresServer
from ingest.api import create_app
from ingest.api.caller import get_caller
from ingest.api.deps import RegionStore, resolve_device
from ingest.api.service import readings as reading_service
from ingest.auth.roles import Principal, Role
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store.migrate import migrate
from ingest.store.region import RegionWriter
from tests.ingest.api.api_seed import FAST, build_runtime, close_runtime, seed_control
from tests.ingest.api.auth_support import bearer, issue_token

CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"


@dataclass
class Recent:
    runtime: Runtime
    client: TestClient
    base: datetime
    values: dict[tuple[str, str], list[tuple[datetime, float]]]  # (device, name) -> readings in eu-central
    copied: list[tuple[datetime, float]]  # power_kw of CNC also stored in us-east


def _row(
    device: str, seq: int, idx: int, name: str, ts: datetime, value: float | str, category: str
) -> tuple[Any, ...]:
    return (
        device,
        seq,
        idx,
        name,
        ts,
        "de-munich",
        "DE",
        category,
        value if isinstance(value, float) else None,
        value if isinstance(value, str) else None,
        "pseudonymized" if isinstance(value, str) else None,
        uuid.uuid4(),
        "sha256:recent",
    )


@pytest.fixture(scope="module")
def recent(api_pg: PostgresServer, api_registry: Registry) -> Iterator[Recent]:
    control = api_pg.create_database("recent_control")
    migrate(control, "control", store="control")
    seed_control(control)  # gateways: gw-munich-1 (online) lists both Munich devices
    regions = {}
    for region in api_registry.regions:
        regions[region] = api_pg.create_database(f"recent_{region.replace('-', '_')}")
        migrate(regions[region], "region", store=region)
    base = (datetime.now(UTC) - timedelta(minutes=50)).replace(microsecond=0)
    values: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    eu: list[tuple[Any, ...]] = []
    for k in range(80):  # CNC: every 30 s for 40 minutes
        ts = base + timedelta(seconds=30 * k)
        for name, value in (("power_kw", 5.0 + k % 7), ("spindle_temp_c", 40.0 + (k * 3) % 11)):
            values.setdefault((CNC, name), []).append((ts, value))
            eu.append(_row(CNC, k, 0, name, ts, value, "machine"))
    eu.append(_row(CNC, 80, 0, "operator_badge", base + timedelta(minutes=41), "ps_recent", "personal"))
    for k in range(40):  # press: every 45 s for 30 minutes
        ts = base + timedelta(seconds=45 * k)
        values.setdefault((PRESS, "power_kw"), []).append((ts, 10.0 + k % 5))
        eu.append(_row(PRESS, k, 0, "power_kw", ts, 10.0 + k % 5, "machine"))
    copied = values[(CNC, "power_kw")][:40]
    us = [_row(CNC, k, 0, "power_kw", ts, v, "machine") for k, (ts, v) in enumerate(copied)]
    for region, rows in (("eu-central", eu), ("us-east", us)):
        writer = RegionWriter(region, regions[region])
        writer.write(rows)
        writer.close()
    runtime = build_runtime(control, regions, api_registry, None)
    admin = bearer(issue_token(control, list(Role), None, name="recent-admin")[1])
    try:
        yield Recent(runtime, TestClient(create_app(runtime, settings=FAST), headers=admin), base, values, copied)
    finally:
        close_runtime(runtime)


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "min": min(values),
        "max": max(values),
        "avg": pytest.approx(sum(values) / len(values)),
        "count": len(values),
    }


# --- site summary --------------------------------------------------------------------------------


def test_site_summary(recent: Recent) -> None:
    body = recent.client.get("/api/v1/sites/de-munich/summary").json()
    assert (body["site_id"], body["home_region"], body["candidate_regions"]) == (
        "de-munich",
        "eu-central",
        ["eu-central", "us-east"],
    )
    assert (body["devices_total"], body["online"], body["offline"], body["unknown"]) == (2, 2, 0, 0)
    # a reading is one timestamped sample of a device; each of its fields is one stored value per region
    assert body["readings_last_hour"] == 80 + 1 + 40
    assert body["values_last_hour"] == 80 * 2 + 1 + 40
    assert body["readings_last_hour_by_region"] == {"eu-central": 121, "us-east": 40}
    assert body["values_last_hour_by_region"] == {"eu-central": 201, "us-east": 40}
    metrics = {m["name"]: m for m in body["metrics"]}
    # every field declared by the two profiles, each once
    assert sorted(metrics) == sorted(
        set(recent.runtime.registry.profiles["cnc_mill"].fields)
        | set(recent.runtime.registry.profiles["injection_press"].fields)
    )
    power = metrics["power_kw"]
    assert (power["devices"], power["unit"], power["category"], power["withheld"]) == (2, "kW", "machine", False)
    last_cnc = recent.values[(CNC, "power_kw")][-1]
    assert power["latest"]["device_id"] == CNC  # the CNC reported last
    assert (datetime.fromisoformat(power["latest"]["ts"]), power["latest"]["value"]) == last_cnc
    both = [v for key in ((CNC, "power_kw"), (PRESS, "power_kw")) for _, v in recent.values[key]]
    assert power["last_hour"] == _stats(both)
    assert metrics["barrel_temp_c"]["latest"] is None
    assert metrics["barrel_temp_c"]["last_hour"] == {"min": None, "max": None, "avg": None, "count": 0}
    badge = metrics["operator_badge"]
    assert (badge["category"], badge["latest"]["value"], badge["withheld"]) == ("personal", "ps_recent", False)
    assert [d["device_id"] for d in body["devices"]] == [CNC, PRESS]
    assert {d["status"] for d in body["devices"]} == {"online"}


def engineer_of(regions: set[str], recent: Recent) -> dict[str, str]:
    return bearer(issue_token(recent.runtime.settings.control_dsn, [Role.ENGINEER], regions)[1])


def test_site_summary_withholds_personal_values_and_pages_devices(recent: Recent) -> None:
    body = recent.client.get(
        "/api/v1/sites/de-munich/summary", params={"limit": 1, "offset": 1}, headers=engineer_of({"us-east"}, recent)
    ).json()
    metrics = {m["name"]: m for m in body["metrics"]}
    badge = metrics["operator_badge"]
    assert (badge["withheld"], badge["last_hour"], badge["latest"]["value"], badge["latest"]["withheld"]) == (
        True,
        None,
        None,
        True,
    )
    assert metrics["power_kw"]["withheld"] is False
    assert (body["limit"], body["offset"], [d["device_id"] for d in body["devices"]]) == (1, 1, [PRESS])
    assert body["devices_total"] == 2


def test_site_summary_errors(recent: Recent) -> None:
    missing = recent.client.get("/api/v1/sites/atlantis/summary")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "unknown site 'atlantis'"}
    assert recent.client.get("/api/v1/sites/de-munich/summary", params={"limit": 0}).status_code == 422
    assert recent.client.get("/api/v1/sites/de-munich/summary", params={"limit": 1001}).status_code == 422


# --- cross-region aggregate ----------------------------------------------------------------------


def test_metric_aggregate_combines_regions_without_counting_copies_twice(recent: Recent) -> None:
    start, end = recent.base - timedelta(minutes=10), recent.base + timedelta(minutes=60)
    body = recent.client.get(
        "/api/v1/metrics/power_kw/aggregate",
        params={"site": "de-munich", "start": start.isoformat(), "end": end.isoformat(), "bucket": "1h"},
    ).json()
    assert (body["name"], body["category"], body["unit"], body["site"]) == ("power_kw", "machine", "kW", "de-munich")
    assert body["regions"] == [
        {"region": "eu-central", "values_stored": 120, "values_counted": 120, "copies_not_counted": 0},
        {"region": "us-east", "values_stored": 40, "values_counted": 0, "copies_not_counted": 40},
    ]
    cnc = [v for _, v in recent.values[(CNC, "power_kw")]]
    press = [v for _, v in recent.values[(PRESS, "power_kw")]]
    assert body["total"] == _stats(cnc + press)  # 120, not 160: the us-east copy is not added
    devices = {d["device_id"]: d for d in body["devices"]}
    assert {k: v for k, v in devices[CNC].items() if k not in ("device_id", "site")} == _stats(cnc)
    assert {k: v for k, v in devices[PRESS].items() if k not in ("device_id", "site")} == _stats(press)
    assert sum(p["count"] for p in body["points"]) == 120


def _check_arithmetic(body: dict[str, Any]) -> None:
    """The totals add up: over points, over regions, over devices, and each point over its regions."""
    total = body["total"]["count"]
    assert sum(p["count"] for p in body["points"]) == total
    assert sum(r["values_counted"] for r in body["regions"]) == total
    assert all(r["values_stored"] == r["values_counted"] + r["copies_not_counted"] for r in body["regions"])
    assert all(sum(p["regions"].values()) == p["count"] for p in body["points"])
    for r in body["regions"]:
        assert sum(p["regions"].get(r["region"], 0) for p in body["points"]) == r["values_counted"]
    if body["devices_total"] == len(body["devices"]):
        assert sum(d["count"] for d in body["devices"]) == total


def test_metric_aggregate_is_a_cross_region_time_series_whose_totals_add_up(recent: Recent) -> None:
    """One minute bucket per minute of data; the us-east copy is never counted twice; a bucket held only in
    us-east is counted from us-east."""
    start, end = recent.base - timedelta(minutes=10), recent.base + timedelta(minutes=60)
    params = {"site": "de-munich", "start": start.isoformat(), "end": end.isoformat(), "bucket": "1m"}
    body = recent.client.get("/api/v1/metrics/power_kw/aggregate", params=params).json()
    assert body["region"] == "all"
    minutes = {ts.replace(second=0) for (d, n), vals in recent.values.items() if n == "power_kw" for ts, _ in vals}
    assert [p["ts"] for p in body["points"]] == [m.isoformat().replace("+00:00", "Z") for m in sorted(minutes)]
    assert body["total"]["count"] == 120
    _check_arithmetic(body)
    only_us = recent.client.get("/api/v1/metrics/power_kw/aggregate", params={**params, "region": "us-east"}).json()
    assert only_us["region"] == "us-east" and only_us["total"]["count"] == 40
    assert only_us["regions"] == [
        {"region": "us-east", "values_stored": 40, "values_counted": 40, "copies_not_counted": 0}
    ]
    _check_arithmetic(only_us)
    # a device-bucket only the analytics store holds (a later copy): counted from us-east, once
    late = recent.base + timedelta(minutes=55)
    writer = RegionWriter("us-east", recent.runtime.settings.region_dsns["us-east"])
    writer.write([_row(PRESS, 999, 0, "power_kw", late, 42.0, "machine")])
    writer.close()
    try:
        body = recent.client.get("/api/v1/metrics/power_kw/aggregate", params=params).json()
        assert body["total"]["count"] == 121
        assert [r["values_counted"] for r in body["regions"]] == [120, 1]
        assert body["points"][-1]["regions"] == {"us-east": 1}
        _check_arithmetic(body)
    finally:
        with psycopg.connect(recent.runtime.settings.region_dsns["us-east"]) as conn:
            for table in ("readings", "readings_1m", "readings_1h"):  # us-east held nothing else of the press
                conn.execute(f"DELETE FROM {table} WHERE device_id = %s", (PRESS,))
    bad = recent.client.get("/api/v1/metrics/power_kw/aggregate", params={**params, "region": "cn-north"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "region"


def test_operators_read_machine_data_of_their_regions_sites(recent: Recent) -> None:
    """An operator scoped to eu-central reads machine telemetry of Munich (home eu-central), not its personal
    fields, and nothing of sites elsewhere."""
    token = issue_token(recent.runtime.settings.control_dsn, [Role.OPERATOR], ["eu-central"])[1]
    client = TestClient(recent.client.app, headers=bearer(token))
    latest = client.get(f"/api/v1/devices/{CNC}/latest")
    assert latest.status_code == 200, latest.text
    fields = {f["name"]: f for f in latest.json()["fields"]}
    assert fields["power_kw"]["value"] is not None and not fields["power_kw"]["withheld"]
    assert fields["operator_badge"]["withheld"] and fields["operator_badge"]["value"] is None
    series = client.get(f"/api/v1/devices/{CNC}/series", params={"name": "power_kw"})
    assert series.status_code == 200 and sum(p["count"] for p in series.json()["points"]) > 0
    badge = client.get(f"/api/v1/devices/{CNC}/series", params={"name": "operator_badge", "bucket": "raw"})
    assert badge.status_code == 403 and "reads machine data only" in badge.json()["detail"]
    summary = client.get("/api/v1/sites/de-munich/summary").json()
    assert {m["name"]: m["withheld"] for m in summary["metrics"]}["operator_badge"] is True
    assert {m["name"]: m["withheld"] for m in summary["metrics"]}["power_kw"] is False
    aggregate = client.get("/api/v1/metrics/power_kw/aggregate").json()
    assert {d["site"] for d in aggregate["devices"]} <= {"de-munich", "fr-lyon"}
    elsewhere = client.get("/api/v1/devices/cn-shenzhen-cnc-01/latest")
    assert elsewhere.status_code == 403 and "outside the region scope" in elsewhere.json()["detail"]
    assert client.get("/api/v1/sites/cn-shenzhen/summary").status_code == 403
    assert client.get("/api/v1/metrics/power_kw/aggregate", params={"site": "us-detroit"}).status_code == 403


def test_metric_aggregate_over_every_site(recent: Recent) -> None:
    start = recent.base - timedelta(minutes=10)
    body = recent.client.get(
        "/api/v1/metrics/power_kw/aggregate",
        params={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()},
    ).json()
    assert body["site"] is None
    assert [r["region"] for r in body["regions"]] == ["ap-southeast", "cn-north", "eu-central", "us-east"]
    assert body["total"]["count"] == 120
    declaring = sorted(
        d for d in recent.runtime.registry.devices if "power_kw" in recent.runtime.registry.profile_of(d).fields
    )
    assert body["devices_total"] == len(body["devices"]) == len(declaring)
    page = recent.client.get(
        "/api/v1/metrics/power_kw/aggregate",
        params={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(), "limit": 2, "offset": 1},
    ).json()
    assert [d["device_id"] for d in page["devices"]] == declaring[1:3]
    assert (page["devices_total"], page["total"]) == (len(declaring), body["total"])  # totals cover every device


def test_metric_aggregate_errors(recent: Recent) -> None:
    def error(status: int, name: str = "power_kw", **params: str) -> dict[str, Any]:
        response = recent.client.get(f"/api/v1/metrics/{name}/aggregate", params=params)
        assert response.status_code == status, response.text
        return cast(dict[str, Any], response.json())

    unknown = error(400, "warp_factor")
    assert (unknown["parameter"], unknown["detail"].startswith("name: unknown metric 'warp_factor' (declared: ")) == (
        "name",
        True,
    )
    personal = error(400, "operator_badge", site="de-munich")
    assert personal["detail"] == (
        "name: metric 'operator_badge' is personal data: only machine data is aggregated across regions"
    )
    assert error(400, site="atlantis")["parameter"] == "site"
    assert error(400, "barrel_temp_c", site="fr-lyon")["detail"] == (
        "name: no device of site 'fr-lyon' declares metric 'barrel_temp_c'"
    )
    now = datetime.now(UTC)
    assert error(400, start=now.isoformat(), end=(now - timedelta(hours=1)).isoformat())["parameter"] == "start"
    too_many = error(400, start=(now - timedelta(days=30)).isoformat(), end=now.isoformat(), bucket="1m")
    assert too_many["parameter"] == "bucket" and "(limit 10000)" in too_many["detail"]
    assert error(422, bucket="2m")["errors"][0]["field"] == "bucket"


# --- rollups answer exactly what the raw rows give -----------------------------------------------


def test_rollup_answers_equal_raw_answers_for_any_window(recent: Recent) -> None:
    ref = resolve_device(recent.runtime.registry, CNC)
    store = RegionStore("eu-central", recent.runtime.regions["eu-central"])
    caller = SimpleNamespace(require=lambda *_: None)
    rng = random.Random(7)
    served_by_rollups = 0
    for _ in range(40):
        start = recent.base + timedelta(seconds=rng.randrange(-600, 2400))
        end = start + timedelta(seconds=rng.randrange(1, 7200))
        bucket = rng.choice(["1m", "5m", "1h", "1d"])
        args = {
            "ref": ref,
            "store": store,
            "settings": FAST,
            "caller": caller,
            "name": "power_kw",
            "start": start,
            "end": end,
            "bucket": bucket,
        }
        fast = reading_service.series(**args)  # type: ignore[arg-type]  # args: series()'s keywords
        slow = reading_service.series(**args, use_rollups=False)  # type: ignore[arg-type]  # args: series()'s keywords
        served_by_rollups += fast.rollup is not None
        assert slow.rollup is None
        assert [(p.ts, p.min, p.max, p.count) for p in fast.points] == [
            (p.ts, p.min, p.max, p.count) for p in slow.points
        ], (start, end, bucket)
        assert [p.avg for p in fast.points] == pytest.approx([p.avg for p in slow.points])
        expected = [v for ts, v in recent.values[(CNC, "power_kw")] if start <= ts < end]
        assert sum(p.count for p in fast.points) == len(expected)
    assert served_by_rollups > 20


def test_caller_regions_come_from_the_principal_scope() -> None:
    def principal(regions: frozenset[str] | None) -> Principal:
        return Principal(user="u", roles=frozenset({Role.ENGINEER}), regions=regions, token_id="t")

    assert get_caller(principal(None)).regions is None
    assert get_caller(principal(frozenset())).regions == set()
    caller = get_caller(principal(frozenset({"eu-central"})))
    assert caller.regions == {"eu-central"}
    assert caller.may_read("us-east", "machine") and caller.may_read("eu-central", "sensitive_personal")
    assert not caller.may_read("us-east", "personal") and not caller.may_read("us-east", "core")


def test_openapi_documents_the_new_endpoints(recent: Recent) -> None:
    spec = recent.client.get("/api/v1/openapi.json").json()
    for path, model in (
        ("/api/v1/sites/{site_id}/summary", "SiteSummaryPublic"),
        ("/api/v1/metrics/{name}/aggregate", "MetricAggregatePublic"),
    ):
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
    series = spec["paths"]["/api/v1/devices/{device_id}/series"]["get"]
    assert {p["name"] for p in series["parameters"]} >= {"name", "bucket", "region", "limit", "cursor"}
    assert {"401", "403", "429"} <= set(series["responses"])
    assert series["security"] == [{"token": []}]
    assert "telemetry" in {t["name"] for t in spec["tags"]}
    with psycopg.connect(recent.runtime.settings.region_dsns["eu-central"]) as conn:
        assert conn.execute("SELECT count(*) FROM readings_1m").fetchone() != (0,)
