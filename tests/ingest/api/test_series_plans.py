"""The rollup-served series queries are planned for their own window at every execution (both backends).

psycopg prepares a statement after ``prepare_threshold`` (5) executions; PostgreSQL then switches a
prepared statement to a generic plan, which on a TimescaleDB continuous aggregate took 14.4 ms instead
of 4.4 ms (partitions and chunks cannot be pruned by parameter values it does not know). The queries of
``ingest.api.service.readings.run_bucketed`` must therefore never be prepared.
"""

from __future__ import annotations

from datetime import timedelta

from psycopg_pool import ConnectionPool

from devstack import PostgresServer
from ingest.api.deps import DeviceRef, RegionStore
from ingest.api.service import readings
from ingest.registry import Device, FieldSpec, Profile, Site
from ingest.store.migrate import migrate
from tests.backend import region_mode
from tests.ingest.api.api_seed import FAST, T0


class _Everyone:
    def require(self, *_: object) -> None:
        return None


def test_series_queries_are_never_prepared(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("series_plans")
    migrate(dsn, "region", store="plans", timescaledb=region_mode())
    ref = DeviceRef(
        device_id="d-1",
        device=Device(site="s", profile="p"),
        site_id="s",
        site=Site(country="DE", home_region="plans", name="s"),
        profile=Profile(fields={"power_kw": FieldSpec(category="machine", unit=None)}),
    )
    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:  # one connection: its statements
        store = RegionStore("plans", pool)
        for i in range(12):  # well past psycopg's prepare_threshold of 5
            for bucket in ("1m", "1h"):
                readings.series(
                    ref=ref,
                    store=store,
                    settings=FAST,
                    caller=_Everyone(),  # type: ignore[arg-type]  # caller: a stand-in that reads every region
                    name="power_kw",
                    start=T0 + timedelta(minutes=i),
                    end=T0 + timedelta(hours=3),
                    bucket=bucket,
                )
        with pool.connection() as conn:
            prepared = conn.execute(
                "SELECT statement FROM pg_prepared_statements WHERE statement ~ 'readings_1[mh]'"
            ).fetchall()
    assert prepared == []
