"""End to end: simulated sites in DE, US and CN publish through a real Mosquitto to the real ingest
with the real Rego policy; afterwards each region database holds exactly what the policy allows,
every published reading is accounted for, and the API returns them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devstack import MosquittoServer
from devstack.agents import agent_config
from edge_agent import Agent
from edge_agent.config import AgentConfig
from ingest.registry import Registry
from tests.integration.ingest_harness import query, running_ingest, wait_until

BATCHES = 6
SITES = ["de-munich", "us-detroit", "cn-shenzhen"]


def _run_agents(broker: MosquittoServer, registry: Registry, tmp_path: Path) -> dict[str, int]:
    """Run one agent per site for BATCHES batches per device; return readings acked per device."""
    acked: dict[str, int] = {}
    errors: list[BaseException] = []

    def run(site: str) -> None:
        try:
            cfg = agent_config(
                registry,
                site,
                mqtt_port=broker.port,
                state_dir=tmp_path / site,
                interval_ms=10,
                max_readings=10,
                max_latency_ms=200,
            )
            agent = Agent(AgentConfig.model_validate(cfg))
            agent.run(max_batches_per_device=BATCHES)
            for s in agent.stats().values():
                acked[s.device_id] = s.readings_acked
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(site,)) for site in SITES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return acked


def _readings(dsn: str, device: str, name: str | None = None) -> int:
    """Distinct readings (device, seq, idx) of ``device`` in a store, optionally having field ``name``."""
    sql = "SELECT count(*) FROM (SELECT DISTINCT seq, idx FROM readings WHERE device_id = %s"
    params: list[str] = [device]
    if name:
        sql += " AND name = %s"
        params.append(name)
    return int(query(dsn, sql + ") r", *params)[0][0])


@pytest.mark.integration
def test_sites_publish_and_each_region_holds_what_the_policy_allows(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    with running_ingest(mqtt_broker, control, regions) as (service, api):
        acked = _run_agents(mqtt_broker, registry, tmp_path)
        devices = sorted(d for d, dev in registry.devices.items() if dev.site in SITES)
        assert sorted(acked) == devices
        total_batches = BATCHES * len(devices)
        wait_until(lambda: service.stats.snapshot()["messages"]["stored"] >= total_batches, 30, "all batches")
        wait_until(lambda: service.stats.snapshot()["inflight"] == 0, 30, "all acked")
        assert service.stats.snapshot()["rejections"] == {}

        eu, us, cn, sg = (regions[r] for r in ("eu-central", "us-east", "cn-north", "ap-southeast"))
        for device in devices:
            n = acked[device]
            assert n > 0
            site = registry.devices[device].site
            if site == "de-munich":
                # Home region holds everything; the analytics region only the machine metrics.
                assert _readings(eu, device) == n
                assert _readings(eu, device, "operator_badge") == n
                assert _readings(us, device) == n
                assert _readings(us, device, "operator_badge") == 0
            elif site == "cn-shenzhen":
                assert _readings(cn, device) == n
                assert _readings(cn, device, "operator_badge") == n
                assert _readings(us, device, "power_kw") == n
                assert _readings(us, device, "operator_badge") == 0
                assert _readings(eu, device) == 0
            else:  # us-detroit: home region is the analytics region
                assert _readings(us, device) == n
                assert _readings(us, device, "operator_badge") == n
                assert _readings(eu, device) == 0 and _readings(cn, device) == 0
            assert _readings(sg, device) == 0

        # CN operator badges exist only in cn-north.
        for dsn in (eu, us, sg):
            assert query(
                dsn, "SELECT count(*) FROM readings WHERE origin_country = 'CN' AND name = 'operator_badge'"
            ) == [(0,)]

        # Every row is explained by a logged decision with the policy revision.
        revision = service.policy.revision
        for dsn in (eu, us, cn):
            orphans = query(dsn, "SELECT count(*) FROM readings WHERE policy_revision <> %s", revision)
            assert orphans == [(0,)]
        denied = query(
            control,
            "SELECT origin_country, region, category, count(*), min(reasons::text) "
            "FROM decisions WHERE outcome = 'denied' GROUP BY 1, 2, 3 ORDER BY 1",
        )
        assert [(o, r, c) for o, r, c, _, _ in denied] == [("CN", "us-east", "personal"), ("DE", "us-east", "personal")]
        assert "PIPL" in denied[0][4]
        assert "GDPR" in denied[1][4]

        # The API serves them from the right region store.
        latest = api.get("/api/v1/devices/cn-shenzhen-cnc-01/latest").json()
        fields = {f["name"]: f for f in latest["fields"]}
        assert fields["operator_badge"]["region"] == "cn-north"
        assert fields["operator_badge"]["value"].startswith("CN-B")
        series = api.get("/api/v1/devices/de-munich-cnc-01/series", params={"name": "power_kw", "bucket": "1m"}).json()
        assert sum(b["count"] for b in series["points"]) == acked["de-munich-cnc-01"]
        flows = api.get("/api/v1/flows", params={"window_s": 3600}).json()["flows"]
        matrix = {(f["origin_country"], f["region"], f["category"], f["outcome"]) for f in flows}
        assert {
            ("CN", "us-east", "personal", "denied"),
            ("CN", "cn-north", "personal", "stored"),
            ("DE", "us-east", "machine", "stored"),
            ("US", "us-east", "personal", "stored"),
        } <= matrix
        devices_api = {d["device_id"]: d for d in api.get("/api/v1/devices", params={"limit": 100}).json()["items"]}
        assert devices_api["de-munich-cnc-01"]["progress"]["last_seq"] == BATCHES
        assert devices_api["de-munich-cnc-01"]["status"] == "offline"  # the agent said goodbye (retained)
