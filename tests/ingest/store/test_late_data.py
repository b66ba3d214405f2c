"""Late data (readings older than the rollups' refresh window) gives the same answers on both backends.

- For real, on the run's backend (plain by default; TimescaleDB with ``--store-backend timescaledb``):
  late readings written through the RegionWriter are in every rollup-served answer, equal to the raw
  rows (the issue's case: a 1-minute window and 1 h buckets nine days ago).
- TimescaleDB path, without the extension (stubs of tests/ingest/store/test_timescale_sql.py): the writer
  records exactly the late ranges, per UTC day, in the transaction of the rows; the maintenance refreshes
  them with ``refresh_continuous_aggregate`` over whole buckets of each aggregate, cut to the retention,
  and deletes what it refreshed. TimescaleDB itself refreshing them: ``--store-backend timescaledb``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devstack import PostgresServer
from ingest.api.deps import DeviceRef, RegionStore
from ingest.api.service import readings
from ingest.records import Row
from ingest.registry import Device, FieldSpec, Profile, Site
from ingest.store import late_data, rollups, timescale
from ingest.store.late_data import LateRows
from ingest.store.maintenance import StoreMaintenance
from ingest.store.migrate import enable_timescaledb, migrate, migration_files
from ingest.store.options import StoreOptions
from ingest.store.region import COLUMNS, RegionWriter
from tests import backend
from tests.ingest.api.api_seed import FAST
from tests.ingest.store.test_timescale_sql import STUBS

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
LATE = NOW - timedelta(days=9)  # beyond the default 7-day refresh window
DEVICE = "late-cnc-01"


def _rows(start: datetime, n: int, seq0: int = 0) -> list[Row]:
    """``n`` readings of power_kw, one every 25 s from ``start``, 10 per batch."""
    decision = uuid.uuid4()
    return [
        Row(
            DEVICE,
            seq0 + i // 10,
            i % 10,
            "power_kw",
            start + timedelta(seconds=25 * i),
            "s",
            "DE",
            "machine",
            float(i % 17),
            None,
            None,
            decision,
            "r",
        )
        for i in range(n)
    ]


class _Everyone:
    def require(self, *_: object) -> None:
        return None


def _series(
    store: RegionStore,
    start: datetime,
    end: datetime,
    bucket: str,
    *,
    use_rollups: bool,
) -> list[tuple[Any, ...]]:
    ref = DeviceRef(
        device_id=DEVICE,
        device=Device(site="s", profile="p"),
        site_id="s",
        site=Site(country="DE", home_region="late", name="s"),
        profile=Profile(fields={"power_kw": FieldSpec(category="machine", unit=None)}),
    )
    # arg-type: _Everyone stands in for a Caller; bucket is one of the Bucket literals, as a plain str here
    answer = readings.series(
        ref=ref,
        store=store,
        settings=FAST,
        caller=_Everyone(),  # type: ignore[arg-type]
        name="power_kw",
        start=start,
        end=end,
        bucket=bucket,  # type: ignore[arg-type]
        use_rollups=use_rollups,
    )
    return [(p.ts, p.min, p.max, round(p.avg, 9), p.count) for p in answer.points]


def test_late_data_is_in_every_rollup_answer(pg_server: PostgresServer) -> None:
    """Plain stores (the default run) and real TimescaleDB stores (``--store-backend timescaledb``): the
    issue's case, a 1-minute window and 1 h buckets nine days ago, after the refresh policy has run."""
    dsn = pg_server.create_database("late_answers")
    migrate(dsn, "region", store="late", timescaledb=backend.region_mode())
    enable_timescaledb(dsn, store="late", mode=backend.region_mode(), options=StoreOptions())  # policies
    writer = RegionWriter("late", dsn)
    writer.write(_rows(NOW - timedelta(hours=1), 100))
    if backend.timescaledb():  # what the 1-minute refresh policy does: its window is materialized
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CALL refresh_continuous_aggregate('readings_1m', now() - INTERVAL '7 days', now())")
            conn.execute("CALL refresh_continuous_aggregate('readings_1h', now() - INTERVAL '7 days', now())")
    writer.write(_rows(LATE, 400, seq0=1000))  # a gateway replaying a nine-day-old queue
    writer.close()
    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:
        store = RegionStore("late", pool)
        minute = (LATE + timedelta(minutes=30), LATE + timedelta(minutes=31))
        day = (LATE - timedelta(hours=1), LATE + timedelta(hours=4))
        if backend.timescaledb():  # below the aggregates' watermark and outside every policy window: lost ...
            assert _series(store, *minute, "1m", use_rollups=True) == []
            with pool.connection() as conn:
                assert late_data.pending(conn) == 1  # ... unless the recorded range is refreshed
        StoreMaintenance({"late": dsn}).run_once()
        for (start, end), bucket in ((minute, "1m"), (day, "1h"), (day, "5m")):
            from_rollups = _series(store, start, end, bucket, use_rollups=True)
            assert from_rollups == _series(store, start, end, bucket, use_rollups=False)
            assert from_rollups, (bucket, start)
        assert sum(p[4] for p in _series(store, *day, "1h", use_rollups=True)) == 400
        with pool.connection() as conn:
            assert late_data.pending(conn) == 0  # refreshed (TimescaleDB) or never recorded (plain)


# --- TimescaleDB path, against stubs ---------------------------------------------------------------------


@pytest.fixture
def stub_store(pg_server: PostgresServer) -> str:
    """A store shaped like a migrated TimescaleDB one: readings, aggregates (plain views), the late-range
    table, store_info, and the refresh policies of the default settings (through apply_policies)."""
    dsn = pg_server.create_database(f"late_stub_{uuid.uuid4().hex[:8]}")
    files = dict(migration_files("region", "timescaledb"))
    with psycopg.connect(dsn) as conn:
        conn.execute(STUBS)
        conn.execute(files["0001_readings"])
        conn.execute(files["0004_late_rollup_ranges"])
        conn.execute("CREATE TABLE store_info (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO store_info VALUES ('backend', 'timescaledb')")
        for rollup in rollups.ROLLUPS:
            conn.execute(f"CREATE VIEW {rollup.table} AS {timescale.continuous_aggregate_query(rollup)}")
        timescale.apply_policies(conn, StoreOptions())
        conn.execute("DELETE FROM ts_calls")
    return dsn


def _refresh_calls(dsn: str) -> list[tuple[str, datetime, datetime]]:
    with psycopg.connect(dsn) as conn:
        return [
            (a["relation"], datetime.fromisoformat(a["start"]), datetime.fromisoformat(a["end"]))
            for (a,) in conn.execute("SELECT args FROM ts_calls WHERE fn = 'refresh_continuous_aggregate' ORDER BY n")
        ]


def test_the_writer_records_late_ranges_in_the_transaction_of_its_rows(stub_store: str) -> None:
    writer = RegionWriter("late", stub_store)
    writer.write(_rows(NOW - timedelta(minutes=5), 50))  # current data: the policies reach it
    late = _rows(LATE.replace(hour=23, minute=50), 60, seq0=1000)  # 25 min across midnight UTC
    writer.write(late)
    writer.write(late)  # redelivered: only refreshes the same ranges again
    writer.close()
    with psycopg.connect(stub_store) as conn:
        ranges = conn.execute("SELECT lo, hi FROM late_rollup_ranges ORDER BY id").fetchall()
    midnight = LATE.replace(hour=0, minute=0) + timedelta(days=1)
    first_day = [r.ts for r in late if r.ts < midnight]
    second_day = [r.ts for r in late if r.ts >= midnight]
    assert ranges == [(min(first_day), max(first_day)), (min(second_day), max(second_day))] * 2


def test_maintenance_refreshes_exactly_the_recorded_ranges(stub_store: str) -> None:
    late = LATE.replace(minute=10, second=5)
    with psycopg.connect(stub_store) as conn:
        conn.execute(
            "INSERT INTO late_rollup_ranges (lo, hi) VALUES (%s, %s), (%s, %s), (%s, %s)",
            (
                late,
                late + timedelta(minutes=3, seconds=10),  # 10:05 .. 13:15 past the hour
                late + timedelta(minutes=2),
                late + timedelta(minutes=4),  # overlaps the first: merged
                NOW - timedelta(days=120),
                NOW - timedelta(days=119),  # older than the 90-day retention
            ),
        )
    report = StoreMaintenance({"late": stub_store}, StoreOptions()).run_once(now=NOW)["late"]
    assert (report.backend, report.error, report.late_ranges) == ("timescaledb", None, 3)
    hour = late.replace(minute=0, second=0)
    assert _refresh_calls(stub_store) == [
        ("readings_1m", late.replace(second=0), late.replace(second=0) + timedelta(minutes=5)),
        ("readings_1h", hour, hour + timedelta(hours=1)),
    ]
    with psycopg.connect(stub_store) as conn:
        assert late_data.pending(conn) == 0
    again = StoreMaintenance({"late": stub_store}).run_once(now=NOW, late_only=True)["late"]
    assert (again.late_ranges, _refresh_calls(stub_store)[2:]) == (0, [])


def test_a_failed_refresh_keeps_the_ranges_for_the_next_run(stub_store: str) -> None:
    with psycopg.connect(stub_store) as conn:
        conn.execute("INSERT INTO late_rollup_ranges (lo, hi) VALUES (%s, %s)", (LATE, LATE))
        conn.execute(
            "ALTER PROCEDURE refresh_continuous_aggregate(regclass, anyelement, anyelement, boolean)"
            " RENAME TO refresh_broken"
        )
    report = StoreMaintenance({"late": stub_store}).run_once(now=NOW)["late"]
    assert report.error is not None and "refresh_continuous_aggregate" in report.error
    with psycopg.connect(stub_store) as conn:
        assert late_data.pending(conn) == 1


def test_late_threshold_follows_the_refresh_policies(stub_store: str) -> None:
    with psycopg.connect(stub_store) as conn:
        late = LateRows.of_store(conn)
    # default policies: start offset 7 days, schedules 5 and 30 minutes: 7 d - 30 min reached for sure
    assert late == LateRows(timedelta(days=7) - timedelta(minutes=30))
    assert late.threshold(NOW) == NOW - timedelta(days=7) + timedelta(minutes=30) + late_data.MARGIN
    assert late.ranges(_rows(NOW - timedelta(days=6), 5), NOW) == []


def test_no_late_recording_without_timescaledb_or_without_a_refresh_policy(
    stub_store: str, pg_server: PostgresServer
) -> None:
    plain = pg_server.create_database("late_plain_threshold")
    migrate(plain, "region", store="late", timescaledb="off")
    with psycopg.connect(plain) as conn:
        assert LateRows.of_store(conn) is None
    with psycopg.connect(stub_store) as conn:
        conn.execute("DELETE FROM timescaledb_information.jobs")
        assert LateRows.of_store(conn) is None  # nothing materialized: real-time aggregates read every row


def test_refresh_windows_are_whole_buckets_merged_and_inside_the_retention() -> None:
    t = datetime(2026, 11, 3, 10, 0, 30, tzinfo=UTC)
    later = t + timedelta(hours=5)
    # 10:00:30; 10:01:30 .. 10:02:29 (touching: merged); 15:00:30
    ranges = [(t, t), (t + timedelta(minutes=1), t + timedelta(minutes=1, seconds=59)), (later, later)]
    assert late_data.merged_windows(ranges, rollups.ROLLUP_1M) == [
        (t.replace(second=0), t.replace(second=0) + timedelta(minutes=3)),
        (t.replace(second=0) + timedelta(hours=5), t.replace(second=0) + timedelta(hours=5, minutes=1)),
    ]
    assert late_data.merged_windows(ranges, rollups.ROLLUP_1H) == [
        (t.replace(minute=0, second=0), t.replace(minute=0, second=0) + timedelta(hours=1)),
        (t.replace(minute=0, second=0) + timedelta(hours=5), t.replace(minute=0, second=0) + timedelta(hours=6)),
    ]
    # a reading exactly on a boundary is in the bucket it starts
    edge = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)
    assert late_data.merged_windows([(edge, edge)], rollups.ROLLUP_1H) == [(edge, edge + timedelta(hours=1))]
    # nothing before the retention's first whole bucket
    assert late_data.merged_windows(ranges, rollups.ROLLUP_1H, not_before=t + timedelta(hours=1)) == [
        (t.replace(minute=0, second=0) + timedelta(hours=5), t.replace(minute=0, second=0) + timedelta(hours=6)),
    ]
    statements = late_data.refresh_statements([(edge, edge)])
    assert [s.sql for s in statements] == [
        "CALL refresh_continuous_aggregate('readings_1m', %(start)s::timestamptz, %(end)s::timestamptz)",
        "CALL refresh_continuous_aggregate('readings_1h', %(start)s::timestamptz, %(end)s::timestamptz)",
    ]
    assert [(s.params["start"], s.params["end"]) for s in statements] == [
        (edge, edge + timedelta(minutes=1)),
        (edge, edge + timedelta(hours=1)),
    ]


def test_columns_put_ts_where_the_writer_hook_reads_it() -> None:
    assert COLUMNS.index("ts") == 4
