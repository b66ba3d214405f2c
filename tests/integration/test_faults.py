"""Faults under load: nothing lost, nothing stored twice.

- the whole PostgreSQL server down for a minute: the ingest stops acknowledging, holds bounded
  memory (Receive Maximum), reports itself unhealthy, resumes by itself;
- the broker restarted: the ingest reconnects to its persistent session and resumes;
- one region's database down: the other regions keep flowing; the affected data waits and is never
  written elsewhere.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from devstack import MosquittoServer, PostgresServer
from ingest.registry import Registry
from tests import backend
from tests.conftest import fresh_databases
from tests.integration.ingest_harness import (
    all_home_readings_stored,
    assert_home_regions_hold_exactly,
    distinct_readings,
    query,
    running_ingest,
    wait_until,
)
from tests.integration.load import AgentLoad


@pytest.mark.integration
def test_postgresql_down_for_a_minute_under_load(
    mqtt_broker: MosquittoServer, registry: Registry, tmp_path: Path
) -> None:
    pg = backend.postgres_server(settings={"fsync": "off"})
    pg.start()
    try:
        control, regions = fresh_databases(pg, registry)
        with running_ingest(mqtt_broker, control, regions, receive_maximum=300, flush_max_messages=100) as (
            service,
            api,
        ):
            load = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen"], tmp_path, batches=400).start()
            wait_until(lambda: service.stats.snapshot()["messages"]["stored"] > 20, 30, "traffic flowing")
            pg.stop()
            outage_end = time.monotonic() + 60
            max_inflight = 0
            while time.monotonic() < outage_end:
                snap = service.stats.snapshot()
                max_inflight = max(max_inflight, snap["inflight"])
                time.sleep(0.5)
            assert not service.stats.healthy()
            health = api.get("/api/v1/health")
            assert health.status_code == 503
            assert "control" in service.stats.snapshot()["down_stores"]
            assert max_inflight <= 300, "Receive Maximum bounds what the ingest holds"
            pg.restart()
            acked = load.join(300)
            wait_until(
                lambda: all_home_readings_stored(acked, regions, registry), 120, "backlog committed after the outage"
            )
            wait_until(
                lambda: service.stats.snapshot()["inflight"] == 0 and service.stats.healthy(),
                30,
                "healthy, nothing unacknowledged",
            )
            assert api.get("/api/v1/health").status_code == 200
            assert_home_regions_hold_exactly(acked, regions, registry)
    finally:
        pg.cleanup()


@pytest.mark.integration
def test_broker_restart_under_load(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    with running_ingest(mqtt_broker, control, regions) as (service, _api):
        load = AgentLoad(mqtt_broker, registry, ["us-detroit", "fr-lyon"], tmp_path, batches=200).start()
        wait_until(lambda: service.stats.snapshot()["messages"]["stored"] > 20, 30, "traffic flowing")
        mqtt_broker.stop()
        wait_until(lambda: not service.stats.snapshot()["broker_connected"], 10, "ingest saw the broker go")
        time.sleep(3)
        mqtt_broker.restart()
        acked = load.join(300)
        wait_until(lambda: service.stats.snapshot()["broker_connected"], 60, "ingest reconnected")
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 120, "every acked reading stored")
        assert_home_regions_hold_exactly(acked, regions, registry)


@pytest.mark.integration
def test_one_region_down_the_others_keep_flowing(
    mqtt_broker: MosquittoServer, pg_server: PostgresServer, registry: Registry, tmp_path: Path
) -> None:
    control, regions = fresh_databases(pg_server, registry)
    cn_server = backend.postgres_server(settings={"fsync": "off"})
    cn_server.start()
    try:
        regions["cn-north"] = cn_server.create_database("cn_north")
        from ingest.store.migrate import migrate

        migrate(regions["cn-north"], "region", store="cn-north", timescaledb=backend.region_mode())
        with running_ingest(mqtt_broker, control, regions) as (service, api):
            cn_server.stop()
            load = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen"], tmp_path, batches=150).start()
            # DE traffic keeps flowing to eu-central and us-east while cn-north is down.
            wait_until(
                lambda: distinct_readings(regions["eu-central"], "de-munich-cnc-01") > 500,
                60,
                "DE readings stored during the cn-north outage",
            )
            snap = service.stats.snapshot()
            assert snap["parked"] > 0 and "cn-north" in snap["down_stores"]
            assert api.get("/api/v1/health").status_code == 503
            # CN personal data waited: it went nowhere else.
            for name in ("eu-central", "us-east", "ap-southeast"):
                assert query(
                    regions[name], "SELECT count(*) FROM readings WHERE origin_country = 'CN' AND category <> 'machine'"
                ) == [(0,)]
            cn_server.restart()
            acked = load.join(300)
            wait_until(lambda: all_home_readings_stored(acked, regions, registry), 120, "parked messages written")
            wait_until(
                lambda: service.stats.snapshot()["parked"] == 0 and service.stats.snapshot()["inflight"] == 0,
                30,
                "nothing parked or unacknowledged",
            )
            assert_home_regions_hold_exactly(acked, regions, registry)
            for name in ("eu-central", "us-east", "ap-southeast"):
                assert query(
                    regions[name], "SELECT count(*) FROM readings WHERE origin_country = 'CN' AND category <> 'machine'"
                ) == [(0,)]
    finally:
        cn_server.cleanup()


@pytest.mark.integration
def test_start_while_a_region_is_down_then_it_comes_back(
    mqtt_broker: MosquittoServer, pg_server: PostgresServer, registry: Registry, tmp_path: Path
) -> None:
    """A replica (re)started while cn-north is down starts with the reachable stores (it used to refuse to start:
    'cannot migrate'), keeps CN data parked, and migrates cn-north when it comes back, never before."""
    control, regions = fresh_databases(pg_server, registry)
    cn_server = PostgresServer(settings={"fsync": "off"})
    cn_server.start()
    try:
        regions["cn-north"] = cn_server.create_database("cn_north")  # never migrated: down before the first start
        cn_server.stop()
        with running_ingest(mqtt_broker, control, regions) as (service, api):
            assert api.get("/api/v1/health").status_code == 503
            load = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen"], tmp_path, batches=80).start()
            wait_until(
                lambda: distinct_readings(regions["eu-central"], "de-munich-cnc-01") > 300,
                60,
                "DE readings stored while cn-north was never reachable",
            )
            wait_until(
                lambda: (
                    query(regions["us-east"], "SELECT count(*) FROM readings WHERE origin_country = 'CN'")[0][0] > 0
                ),
                60,
                "CN machine data reached us-east",
            )
            assert service.stats.snapshot()["parked"] > 0
            for name in ("eu-central", "us-east", "ap-southeast"):
                assert query(
                    regions[name], "SELECT count(*) FROM readings WHERE origin_country = 'CN' AND category <> 'machine'"
                ) == [(0,)]
            cn_server.restart()
            acked = load.join(300)

            def migrated_and_stored() -> bool:  # the ingest migrates cn-north at its next retry, not at once
                try:
                    return all_home_readings_stored(acked, regions, registry)
                except psycopg.errors.UndefinedTable:
                    return False

            wait_until(migrated_and_stored, 120, "cn-north migrated and the parked messages written")
            wait_until(
                lambda: (
                    service.stats.snapshot()["parked"] == 0
                    and service.stats.snapshot()["inflight"] == 0
                    and service.stats.healthy()
                ),
                30,
                "nothing parked or unacknowledged, healthy",
            )
            assert_home_regions_hold_exactly(acked, regions, registry)
            assert query(regions["cn-north"], "SELECT count(*) FROM schema_migrations")[0][0] > 0
    finally:
        cn_server.cleanup()
