"""The TimescaleDB path of a region store: hypertable, compression, retention and continuous aggregates.

Used where the ``timescaledb`` extension can be loaded (production images, docker-compose). Every
statement is produced by a function here so that it can be checked without the extension
(tests/ingest/store/test_timescale_sql.py runs them against stub functions with TimescaleDB's
signatures on plain PostgreSQL). Two parts:

- **Schema** (:func:`schema_statements`): applied once, as the region migrations
  ``0002_timescaledb_hypertable`` and ``0003_timescaledb_rollups`` of this backend
  (:mod:`ingest.store.migrate`): the extension, ``readings`` as a hypertable on ``ts``, and the
  continuous aggregates ``readings_1m`` / ``readings_1h`` with the same columns as the plain path's
  rollup tables (:mod:`ingest.store.rollups`).
- **Policies** (:func:`policy_statements`): applied at every start from the settings, so a changed
  setting takes effect on restart: chunk interval (new chunks), compression (segment by device_id,
  name; order by ts), compression policy, retention policy, refresh policies of the aggregates.

Targets TimescaleDB 2.13+ (``by_range``; the docker-compose image is 2.17). The compression options
use the ``timescaledb.compress*`` names, which 2.18+ still accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from ingest.store.options import StoreOptions
from ingest.store.rollups import ROLLUP_1H, ROLLUP_1M, ROLLUPS, Rollup

HYPERTABLE = "readings"
TIME_COLUMN = "ts"
INITIAL_CHUNK_INTERVAL = "INTERVAL '1 day'"  # replaced at start by set_chunk_time_interval(settings)
SEGMENT_BY = ("device_id", "name")
ORDER_BY = (("ts", "DESC"),)
# How the refresh policy of each aggregate runs: (end_offset, schedule_interval).
REFRESH: dict[str, tuple[timedelta, timedelta]] = {
    ROLLUP_1M.table: (timedelta(minutes=1), timedelta(minutes=5)),
    ROLLUP_1H.table: (timedelta(hours=1), timedelta(minutes=30)),
}


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)

    def execute(self, conn: psycopg.Connection) -> None:
        conn.execute(self.sql, self.params or None)  # type: ignore[arg-type]


# --- schema (migrations of the timescaledb backend) ------------------------------------------------


def extension_statement() -> Statement:
    return Statement("CREATE EXTENSION IF NOT EXISTS timescaledb")


def hypertable_statement() -> Statement:
    """``readings`` becomes a hypertable partitioned on ts; its primary key (device_id, seq, idx, name,
    ts) already includes the partitioning column, as TimescaleDB requires of every unique index."""
    return Statement(
        f"SELECT create_hypertable('{HYPERTABLE}', by_range('{TIME_COLUMN}', {INITIAL_CHUNK_INTERVAL}),"
        " create_default_indexes => FALSE, if_not_exists => TRUE, migrate_data => TRUE)"
    )


def continuous_aggregate_query(rollup: Rollup) -> str:
    """The SELECT of a continuous aggregate: the same rows as the plain path's rollup table."""
    bucket = f"time_bucket({rollup.interval_sql}, {TIME_COLUMN})"
    return (
        f"SELECT device_id, name, {bucket} AS bucket,"
        " count(num) AS count, sum(num) AS sum, min(num) AS min, max(num) AS max"
        f" FROM {HYPERTABLE} WHERE num IS NOT NULL"
        f" GROUP BY device_id, name, {bucket}"
    )


def continuous_aggregate_statements(rollup: Rollup) -> list[Statement]:
    """Real-time aggregate (materialized rows + not yet materialized raw rows), created empty: the refresh
    policy fills it (``WITH NO DATA`` also lets this run inside the migration's transaction)."""
    return [
        Statement(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {rollup.table}"
            " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"{continuous_aggregate_query(rollup)} WITH NO DATA"
        ),
        Statement(f"CREATE INDEX IF NOT EXISTS {rollup.table}_device_name ON {rollup.table} (device_id, name, bucket)"),
    ]


def schema_statements() -> dict[str, list[Statement]]:
    """Migration version -> statements, for the timescaledb backend."""
    return {
        "0002_timescaledb_hypertable": [extension_statement(), hypertable_statement()],
        "0003_timescaledb_rollups": [s for r in ROLLUPS for s in continuous_aggregate_statements(r)],
    }


# --- policies (every start) ------------------------------------------------------------------------


def compression_settings_statement() -> Statement:
    segment_by = ", ".join(SEGMENT_BY)
    order_by = ", ".join(f"{column} {direction}" for column, direction in ORDER_BY)
    return Statement(
        f"ALTER TABLE {HYPERTABLE} SET (timescaledb.compress,"
        f" timescaledb.compress_segmentby = '{segment_by}', timescaledb.compress_orderby = '{order_by}')"
    )


def refresh_start_offset(rollup: Rollup, options: StoreOptions) -> timedelta:
    """How far back a refresh looks: the configured window, but always inside the raw retention (a
    refresh over dropped raw chunks would empty the aggregate there) and at least two buckets past
    the end offset (TimescaleDB's minimum refresh window)."""
    end_offset, _ = REFRESH[rollup.table]
    start = options.rollup_refresh_window
    if options.retention is not None:
        start = min(start, options.retention - timedelta(days=1))
    return max(start, end_offset + 2 * rollup.width)


def policy_statements(options: StoreOptions) -> list[Statement]:
    """Idempotent: each policy is removed (if present) and added with the current settings."""
    statements = [
        Statement(
            f"SELECT set_chunk_time_interval('{HYPERTABLE}', %(chunk)s::interval)", {"chunk": options.chunk_interval}
        ),
        Statement(f"SELECT remove_compression_policy('{HYPERTABLE}', if_exists => TRUE)"),
        Statement(
            f"SELECT add_compression_policy('{HYPERTABLE}', compress_after => %(after)s::interval)",
            {"after": options.compress_after},
        ),
        Statement(f"SELECT remove_retention_policy('{HYPERTABLE}', if_exists => TRUE)"),
    ]
    if options.retention is not None:
        statements.append(Statement(
            f"SELECT add_retention_policy('{HYPERTABLE}', drop_after => %(drop)s::interval)",
            {"drop": options.retention},
        ))
    for rollup in ROLLUPS:
        end_offset, schedule = REFRESH[rollup.table]
        statements += [
            Statement(f"SELECT remove_continuous_aggregate_policy('{rollup.table}', if_exists => TRUE)"),
            Statement(
                f"SELECT add_continuous_aggregate_policy('{rollup.table}', start_offset => %(start)s::interval,"
                " end_offset => %(end)s::interval, schedule_interval => %(every)s::interval)",
                {"start": refresh_start_offset(rollup, options), "end": end_offset, "every": schedule},
            ),
            Statement(f"SELECT remove_retention_policy('{rollup.table}', if_exists => TRUE)"),
        ]
        if options.rollup_retention is not None:
            statements.append(Statement(
                f"SELECT add_retention_policy('{rollup.table}', drop_after => %(drop)s::interval)",
                {"drop": max(options.rollup_retention, options.retention or timedelta(0))},
            ))
    return statements


_COMPRESSION_ENABLED = (
    "SELECT compression_enabled FROM timescaledb_information.hypertables"
    " WHERE hypertable_schema = current_schema() AND hypertable_name = %s"
)


def apply_policies(conn: psycopg.Connection, options: StoreOptions) -> None:
    """Enable compression once (its settings cannot change while compressed chunks exist), then apply
    :func:`policy_statements`. Runs in the caller's transaction."""
    row = conn.execute(_COMPRESSION_ENABLED, (HYPERTABLE,)).fetchone()
    if row is None or not row[0]:
        compression_settings_statement().execute(conn)
    for statement in policy_statements(options):
        statement.execute(conn)


def extension_usable(conn: psycopg.Connection) -> bool:
    """True when ``CREATE EXTENSION timescaledb`` can work here: installed already, or available and
    preloaded (the extension needs ``shared_preload_libraries``)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        " OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        "     AND current_setting('shared_preload_libraries') ~ '(^|[ ,])timescaledb($|[ ,])')"
    ).fetchone()
    return bool(row and row[0])


def is_hypertable(conn: psycopg.Connection) -> bool:
    """``readings`` is already a hypertable (a store set up before the backend was recorded)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = %s",
        (HYPERTABLE,),
    ).fetchone()
    return row is not None
