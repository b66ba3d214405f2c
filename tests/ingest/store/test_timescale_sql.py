"""The TimescaleDB path, checked without TimescaleDB.

The extension is not available here, so the statements of ingest.store.timescale are run against
*stubs*: plain SQL functions with the names, parameter names and types of TimescaleDB 2.13+'s API
(create_hypertable, by_range, set_chunk_time_interval, add/remove_*_policy; ``"any"`` parameters become
``anyelement``, which only C functions can avoid) that record their arguments. This checks that every
statement parses (PostgreSQL's own parser), resolves to the right function with the right named
arguments and types, and passes the settings' values. The continuous aggregates' SELECT runs as a plain
view (time_bucket stubbed with date_bin) and must give exactly the plain path's rollup rows.

Not checked here (needs the extension): TimescaleDB's own validation of the options (e.g. that a
continuous aggregate accepts this query, compression settings, refresh window rules) and the jobs
actually running. See the README section on the TimescaleDB path.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devstack import PostgresServer
from ingest.store import rollups, timescale
from ingest.store.migrate import migrate, migration_files
from ingest.store.options import StoreOptions
from ingest.store.region import COLUMNS, RegionWriter

STUBS = """
CREATE SCHEMA _timescaledb_internal;
CREATE TYPE _timescaledb_internal.dimension_info AS (column_name name, partition_interval text);
CREATE TABLE ts_calls (n serial PRIMARY KEY, fn text NOT NULL, args jsonb NOT NULL);

CREATE FUNCTION by_range(column_name name, partition_interval anyelement = NULL::bigint,
                         partition_func regproc = NULL, partition_origin timestamptz = NULL)
RETURNS _timescaledb_internal.dimension_info LANGUAGE sql AS
$$ SELECT ROW(column_name, partition_interval::text)::_timescaledb_internal.dimension_info $$;

CREATE FUNCTION create_hypertable(relation regclass, dimension _timescaledb_internal.dimension_info,
                                  create_default_indexes boolean = TRUE, if_not_exists boolean = FALSE,
                                  migrate_data boolean = FALSE)
RETURNS TABLE(hypertable_id int, created boolean) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ts_calls (fn, args) VALUES ('create_hypertable', jsonb_build_object(
    'relation', relation::text, 'column', (dimension).column_name,
    'interval', (dimension).partition_interval, 'create_default_indexes', create_default_indexes,
    'if_not_exists', if_not_exists, 'migrate_data', migrate_data));
  RETURN QUERY SELECT 1, TRUE;
END $$;

CREATE FUNCTION set_chunk_time_interval(hypertable regclass, chunk_time_interval anyelement,
                                        dimension_name name = NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('set_chunk_time_interval',
    jsonb_build_object('relation', hypertable::text, 'interval', chunk_time_interval::text))
$$;

-- timescaledb_information.jobs as a table the add/remove stubs keep up to date (config as TimescaleDB
-- writes it: intervals as text; a continuous aggregate's policies named by the aggregate, as 2.15+ does)
CREATE SCHEMA timescaledb_information;
CREATE TABLE timescaledb_information.jobs (
    job_id serial PRIMARY KEY, proc_name name NOT NULL, hypertable_schema name NOT NULL DEFAULT current_schema(),
    hypertable_name name NOT NULL, schedule_interval interval NOT NULL, config jsonb NOT NULL);
SELECT setval('timescaledb_information.jobs_job_id_seq', 1000);

CREATE FUNCTION _job(proc name, rel regclass, every interval, config jsonb) RETURNS integer LANGUAGE sql AS $$
  INSERT INTO timescaledb_information.jobs (proc_name, hypertable_name, schedule_interval, config)
  VALUES (proc, rel::text, every, config) RETURNING job_id
$$;
CREATE FUNCTION _unjob(proc name, rel regclass) RETURNS void LANGUAGE sql AS $$
  DELETE FROM timescaledb_information.jobs WHERE proc_name = proc AND hypertable_name = rel::text
$$;

CREATE FUNCTION add_compression_policy(hypertable regclass, compress_after anyelement,
    if_not_exists boolean = FALSE, schedule_interval interval = NULL, initial_start timestamptz = NULL,
    timezone text = NULL)
RETURNS integer LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('add_compression_policy',
    jsonb_build_object('relation', hypertable::text, 'compress_after', compress_after::text));
  SELECT _job('policy_compression', hypertable, INTERVAL '12 hours',
              jsonb_build_object('hypertable_id', 1, 'compress_after', compress_after::text))
$$;

CREATE FUNCTION remove_compression_policy(hypertable regclass, if_exists boolean = FALSE)
RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('remove_compression_policy',
    jsonb_build_object('relation', hypertable::text, 'if_exists', if_exists));
  SELECT _unjob('policy_compression', hypertable);
  SELECT TRUE
$$;

CREATE FUNCTION add_retention_policy(relation regclass, drop_after anyelement, if_not_exists boolean = FALSE,
    schedule_interval interval = NULL, initial_start timestamptz = NULL, timezone text = NULL)
RETURNS integer LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('add_retention_policy',
    jsonb_build_object('relation', relation::text, 'drop_after', drop_after::text));
  SELECT _job('policy_retention', relation, INTERVAL '1 day',
              jsonb_build_object('hypertable_id', 1, 'drop_after', drop_after::text))
$$;

CREATE FUNCTION remove_retention_policy(relation regclass, if_exists boolean = FALSE)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('remove_retention_policy',
    jsonb_build_object('relation', relation::text, 'if_exists', if_exists));
  SELECT _unjob('policy_retention', relation)
$$;

CREATE FUNCTION add_continuous_aggregate_policy(continuous_aggregate regclass, start_offset anyelement,
    end_offset anyelement, schedule_interval interval, if_not_exists boolean = FALSE,
    initial_start timestamptz = NULL, timezone text = NULL)
RETURNS integer LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('add_continuous_aggregate_policy', jsonb_build_object(
    'relation', continuous_aggregate::text, 'start_offset', start_offset::text,
    'end_offset', end_offset::text, 'schedule_interval', schedule_interval::text));
  SELECT _job('policy_refresh_continuous_aggregate', continuous_aggregate, schedule_interval, jsonb_build_object(
    'mat_hypertable_id', 2, 'start_offset', start_offset::text, 'end_offset', end_offset::text))
$$;

CREATE FUNCTION remove_continuous_aggregate_policy(continuous_aggregate regclass,
    if_not_exists boolean = FALSE, if_exists boolean = NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('remove_continuous_aggregate_policy',
    jsonb_build_object('relation', continuous_aggregate::text, 'if_exists', if_exists));
  SELECT _unjob('policy_refresh_continuous_aggregate', continuous_aggregate)
$$;

CREATE PROCEDURE refresh_continuous_aggregate(continuous_aggregate regclass, window_start anyelement,
    window_end anyelement, force boolean = FALSE)
LANGUAGE sql AS $$
  INSERT INTO ts_calls (fn, args) VALUES ('refresh_continuous_aggregate', jsonb_build_object(
    'relation', continuous_aggregate::text, 'start', window_start, 'end', window_end))
$$;

-- time_bucket(interval, timestamptz): buckets aligned on 2000-01-03 00:00 UTC, as TimescaleDB's.
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$;

CREATE TABLE timescaledb_information.hypertables (
    hypertable_schema name, hypertable_name name, compression_enabled boolean);
"""

T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


@pytest.fixture
def stub_db(pg_server: PostgresServer) -> str:
    """A database with readings as created by the common migration 0001 and the TimescaleDB stubs."""
    dsn = pg_server.create_database(f"ts_stub_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(dsn) as conn:
        conn.execute(STUBS)
        conn.execute(dict(migration_files("region", "timescaledb"))["0001_readings"])
        conn.execute("INSERT INTO timescaledb_information.hypertables VALUES (current_schema(), 'readings', false)")
    return dsn


def _calls(conn: psycopg.Connection) -> list[tuple[str, dict[str, Any]]]:
    return [(fn, args) for fn, args in conn.execute("SELECT fn, args FROM ts_calls ORDER BY n")]


def test_schema_migrations_of_the_timescaledb_backend(stub_db: str) -> None:
    files = dict(migration_files("region", "timescaledb"))
    statements = timescale.schema_statements()
    assert list(statements) == [
        "0002_timescaledb_hypertable",
        "0003_timescaledb_rollups",
        "0005_timescaledb_compression",
    ]
    assert statements["0005_timescaledb_compression"] == [timescale.compression_settings_statement()]
    for version, stmts in statements.items():
        assert files[version] == ";\n".join(s.sql for s in stmts)
    hypertable = statements["0002_timescaledb_hypertable"]
    assert hypertable[0] == timescale.extension_statement()
    assert hypertable[0].sql == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    with psycopg.connect(stub_db) as conn:
        hypertable[1].execute(conn)
        assert _calls(conn) == [
            (
                "create_hypertable",
                {
                    "relation": "readings",
                    "column": "ts",
                    "interval": "1 day",
                    "create_default_indexes": False,
                    "if_not_exists": True,
                    "migrate_data": True,
                },
            )
        ]


def test_every_unique_index_of_readings_includes_the_time_column(stub_db: str) -> None:
    with psycopg.connect(stub_db) as conn:
        unique = conn.execute(
            "SELECT i.indexrelid::regclass::text, array_agg(a.attname::text) FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = 'readings'::regclass AND i.indisunique GROUP BY 1"
        ).fetchall()
    assert unique and all(timescale.TIME_COLUMN in columns for _, columns in unique)


def test_continuous_aggregates_parse_and_match_the_plain_rollups(stub_db: str, pg_server: PostgresServer) -> None:
    # the same readings through the real writer into a plain store (rollup tables) ...
    plain = pg_server.create_database(f"ts_plain_{uuid.uuid4().hex[:8]}")
    migrate(plain, "region", store="eu")
    rows = [
        (
            f"dev-{i % 3}",
            i,
            j,
            name,
            T0 + timedelta(seconds=37 * i + j),
            "s",
            "DE",
            "machine",
            float((i * 7 + j) % 11) if name != "badge" else None,
            "b-1" if name == "badge" else None,
            None,
            uuid.uuid4(),
            "r",
        )
        for i in range(200)
        for j in range(3)
        for name in ("power_kw", "temp_c", "badge")
    ]
    writer = RegionWriter("eu", plain)
    writer.write(rows)
    writer.close()
    # ... and into the stub database, where the aggregates' SELECT runs as a plain view
    with psycopg.connect(stub_db) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY readings ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        for rollup in rollups.ROLLUPS:
            create, index = timescale.continuous_aggregate_statements(rollup)
            assert create.sql.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {rollup.table} WITH (timescaledb.")
            assert "timescaledb.materialized_only = false" in create.sql and create.sql.endswith(" WITH NO DATA")
            # plain PostgreSQL parses the statement and only rejects the timescaledb.* options
            with (
                pytest.raises(psycopg.errors.InvalidParameterValue, match='namespace "timescaledb"'),
                conn.transaction(),
            ):
                create.execute(conn)
            conn.execute(f"CREATE VIEW {rollup.table} AS {timescale.continuous_aggregate_query(rollup)}")
            with pytest.raises(psycopg.errors.WrongObjectType), conn.transaction():
                index.execute(conn)  # on a view: parsed and resolved; TimescaleDB indexes the aggregate
        query = "SELECT device_id, name, bucket, count, sum, min, max FROM {} ORDER BY 1, 2, 3"
        for rollup in rollups.ROLLUPS:
            as_aggregate = conn.execute(query.format(rollup.table)).fetchall()
            with psycopg.connect(plain) as other:
                as_table = other.execute(query.format(rollup.table)).fetchall()
            assert len(as_table) > 10
            assert as_aggregate == as_table, rollup.table


def test_compression_settings_name_real_columns(stub_db: str) -> None:
    statement = timescale.compression_settings_statement()
    assert statement.sql == (
        "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, name',"
        " timescaledb.compress_orderby = 'ts DESC, seq DESC, idx DESC')"
    )
    with psycopg.connect(stub_db) as conn:
        columns = {
            name
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'readings'::regclass AND attnum > 0"
            )
        }
        assert set(timescale.SEGMENT_BY) <= columns and {c for c, _ in timescale.ORDER_BY} <= columns
        with pytest.raises(psycopg.errors.InvalidParameterValue, match='namespace "timescaledb"'):
            statement.execute(conn)


def test_every_primary_key_column_is_segmented_or_ordered(stub_db: str) -> None:
    """TimescaleDB checks a key against compressed data by segment (segment-by columns) and by the min/max
    of the order-by columns of each batch: a key column in neither makes it decompress whole segments (and
    warn 'column "seq" should be used for segmenting or ordering')."""
    with psycopg.connect(stub_db) as conn:
        row = conn.execute(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'readings'::regclass AND i.indisprimary"
        ).fetchone()
        assert row is not None
        (key,) = row
    assert set(key) == {"device_id", "seq", "idx", "name", "ts"}
    assert set(key) <= set(timescale.SEGMENT_BY) | {c for c, _ in timescale.ORDER_BY}


def _with_aggregates(conn: psycopg.Connection) -> None:
    for rollup in rollups.ROLLUPS:
        conn.execute(f"CREATE VIEW {rollup.table} AS {timescale.continuous_aggregate_query(rollup)}")


SETTINGS = StoreOptions(
    chunk_interval=timedelta(hours=6),
    compress_after=timedelta(days=3),
    retention_days=30,
    rollup_retention_days=400,
    rollup_refresh_window=timedelta(days=60),
)


def test_policies_carry_the_settings(stub_db: str) -> None:
    with psycopg.connect(stub_db) as conn:
        _with_aggregates(conn)
        changes = timescale.apply_policies(conn, SETTINGS)
        calls = _calls(conn)
    assert [c.action for c in changes] == ["add"] * 6
    assert calls == [
        ("set_chunk_time_interval", {"relation": "readings", "interval": "06:00:00"}),
        ("add_compression_policy", {"relation": "readings", "compress_after": "3 days"}),
        ("add_retention_policy", {"relation": "readings", "drop_after": "30 days"}),
        # the 60-day refresh window is cut to stay inside the 30-day raw retention
        (
            "add_continuous_aggregate_policy",
            {
                "relation": "readings_1m",
                "start_offset": "29 days",
                "end_offset": "00:01:00",
                "schedule_interval": "00:05:00",
            },
        ),
        ("add_retention_policy", {"relation": "readings_1m", "drop_after": "400 days"}),
        (
            "add_continuous_aggregate_policy",
            {
                "relation": "readings_1h",
                "start_offset": "29 days",
                "end_offset": "01:00:00",
                "schedule_interval": "00:30:00",
            },
        ),
        ("add_retention_policy", {"relation": "readings_1h", "drop_after": "400 days"}),
    ]


def test_a_restart_with_the_same_settings_keeps_every_job(stub_db: str) -> None:
    """Policies are not removed and re-added at each start: job ids (and with them TimescaleDB's job
    statistics and schedule) stay, and no job is made to run at once by a replica's restart."""
    with psycopg.connect(stub_db) as conn:
        _with_aggregates(conn)
        timescale.apply_policies(conn, SETTINGS)
        jobs = conn.execute("SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs").fetchall()
        conn.execute("DELETE FROM ts_calls")
        changes = timescale.apply_policies(conn, SETTINGS)
        assert [c.action for c in changes] == ["keep"] * 6
        assert _calls(conn) == [("set_chunk_time_interval", {"relation": "readings", "interval": "06:00:00"})]
        assert (
            conn.execute("SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs").fetchall()
            == jobs
        )


def test_a_changed_setting_replaces_only_its_policy(stub_db: str) -> None:
    with psycopg.connect(stub_db) as conn:
        _with_aggregates(conn)
        timescale.apply_policies(conn, SETTINGS)
        conn.execute("DELETE FROM ts_calls")
        changed = StoreOptions(**{**SETTINGS.__dict__, "compress_after": timedelta(days=5), "rollup_retention_days": 0})
        changes = timescale.apply_policies(conn, changed)
        assert {(c.proc, c.relation): c.action for c in changes} == {
            ("policy_compression", "readings"): "replace",
            ("policy_retention", "readings"): "keep",
            ("policy_refresh_continuous_aggregate", "readings_1m"): "keep",
            ("policy_refresh_continuous_aggregate", "readings_1h"): "keep",
            ("policy_retention", "readings_1h"): "remove",
            ("policy_retention", "readings_1m"): "remove",
        }
        assert _calls(conn)[1:] == [
            ("remove_compression_policy", {"relation": "readings", "if_exists": True}),
            ("add_compression_policy", {"relation": "readings", "compress_after": "5 days"}),
            ("remove_retention_policy", {"relation": "readings_1h", "if_exists": True}),
            ("remove_retention_policy", {"relation": "readings_1m", "if_exists": True}),
        ]


def test_an_equal_interval_written_differently_is_no_change(stub_db: str) -> None:
    """TimescaleDB stores the config as interval text ('1 day', '24:00:00' ...): compared as durations."""
    with psycopg.connect(stub_db) as conn:
        _with_aggregates(conn)
        timescale.apply_policies(conn, SETTINGS)
        conn.execute(
            'UPDATE timescaledb_information.jobs SET config = config || \'{"compress_after": "72:00:00"}\''
            " WHERE proc_name = 'policy_compression'"
        )
        assert {c.action for c in timescale.apply_policies(conn, SETTINGS)} == {"keep"}


def test_no_retention_policy_when_retention_is_off() -> None:
    policies = timescale.desired_policies(StoreOptions(retention_days=0, rollup_retention_days=0))
    assert [(p.proc, p.relation) for p in policies] == [
        ("policy_compression", "readings"),
        ("policy_refresh_continuous_aggregate", "readings_1m"),
        ("policy_refresh_continuous_aggregate", "readings_1h"),
    ]


def test_refresh_window_never_shorter_than_two_buckets() -> None:
    tiny = StoreOptions(rollup_refresh_window=timedelta(seconds=1), retention_days=0)
    assert timescale.refresh_start_offset(rollups.ROLLUP_1M, tiny) == timedelta(minutes=3)
    assert timescale.refresh_start_offset(rollups.ROLLUP_1H, tiny) == timedelta(hours=3)
    assert timescale.refresh_start_offset(rollups.ROLLUP_1H, StoreOptions()) == timedelta(days=7)
