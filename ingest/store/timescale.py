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
  Compression (segment by device_id, name; order by ts, seq, idx) is migration
  ``0005_timescaledb_compression``.
- **Policies** (:func:`apply_policies`): reconciled at every start with the settings, so a changed
  setting takes effect on restart while an unchanged policy keeps its job (id, statistics, schedule):
  compression, retention, refresh policies of the aggregates and their retention.
- **Late data** (:mod:`ingest.store.late_data`) and **job health** (:mod:`ingest.store.jobs`) read and
  call what is defined here.

Targets TimescaleDB 2.15+ (``by_range``, ``timescaledb_information.job_history``; the docker-compose image
is 2.31). The compression options use the ``timescaledb.compress*`` names, which 2.18+ still accept.
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
ORDER_BY = (("ts", "DESC"), ("seq", "DESC"), ("idx", "DESC"))  # every primary-key column: see 0005
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
        conn.execute(self.sql, self.params or None)


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
        "0005_timescaledb_compression": [compression_settings_statement()],
    }


def refresh_all_statements() -> list[Statement]:
    """Materialize every bucket of both aggregates (after a bulk load that bypassed the writer: tests'
    seeds, the benchmark). ``CALL``: autocommit only."""
    return [Statement(f"CALL refresh_continuous_aggregate('{r.table}', NULL, NULL)") for r in ROLLUPS]


# --- policies (every start, only what is missing or changed) ----------------------------------------

COMPRESSION, RETENTION, REFRESH_PROC = "policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"
POLICY_PROCS = (COMPRESSION, RETENTION, REFRESH_PROC)


def compression_settings_statement() -> Statement:
    """Compression of ``readings`` (migration ``0005_timescaledb_compression``).

    Every column of the primary key (device_id, seq, idx, name, ts) is a segment-by or order-by column:
    an insert into a compressed chunk (a redelivery, a late batch) checks the key against the segment of
    its (device_id, name) and, inside it, only the batches whose min/max of ts, seq and idx can hold the
    row, instead of decompressing whole segments (TimescaleDB warns ``column "seq" should be used for
    segmenting or ordering`` otherwise)."""
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


@dataclass(frozen=True)
class Policy:
    """One TimescaleDB job the settings ask for: what identifies it (``proc``, ``relation``), what must
    match for an existing job to be kept (``config`` keys of the job, ``schedule``), and how to create
    and remove it."""

    proc: str
    relation: str
    config: dict[str, timedelta]
    schedule: timedelta | None
    add: Statement
    remove: Statement


def _remove(proc: str, relation: str) -> Statement:
    fn = {
        COMPRESSION: "remove_compression_policy",
        RETENTION: "remove_retention_policy",
        REFRESH_PROC: "remove_continuous_aggregate_policy",
    }[proc]
    return Statement(f"SELECT {fn}('{relation}', if_exists => TRUE)")


def _retention(relation: str, drop_after: timedelta) -> Policy:
    return Policy(
        RETENTION,
        relation,
        {"drop_after": drop_after},
        None,
        Statement(
            f"SELECT add_retention_policy('{relation}', drop_after => %(drop)s::interval)",
            {"drop": drop_after},
        ),
        _remove(RETENTION, relation),
    )


def desired_policies(options: StoreOptions) -> list[Policy]:
    """Every policy the settings ask for, in the order they are created."""
    policies = [
        Policy(
            COMPRESSION,
            HYPERTABLE,
            {"compress_after": options.compress_after},
            None,
            Statement(
                f"SELECT add_compression_policy('{HYPERTABLE}', compress_after => %(after)s::interval)",
                {"after": options.compress_after},
            ),
            _remove(COMPRESSION, HYPERTABLE),
        )
    ]
    if options.retention is not None:
        policies.append(_retention(HYPERTABLE, options.retention))
    for rollup in ROLLUPS:
        end_offset, schedule = REFRESH[rollup.table]
        start = refresh_start_offset(rollup, options)
        policies.append(
            Policy(
                REFRESH_PROC,
                rollup.table,
                {"start_offset": start, "end_offset": end_offset},
                schedule,
                Statement(
                    f"SELECT add_continuous_aggregate_policy('{rollup.table}', start_offset => %(start)s::interval,"
                    " end_offset => %(end)s::interval, schedule_interval => %(every)s::interval)",
                    {"start": start, "end": end_offset, "every": schedule},
                ),
                _remove(REFRESH_PROC, rollup.table),
            )
        )
        if options.rollup_retention is not None:
            policies.append(_retention(rollup.table, max(options.rollup_retention, options.retention or timedelta(0))))
    return policies


@dataclass(frozen=True)
class ExistingJob:
    job_id: int
    proc: str
    relation: str
    config: dict[str, timedelta]
    schedule: timedelta | None


# timescaledb_information.jobs names a continuous aggregate's policies by the aggregate (2.x since 2.15);
# the config keys we compare are read as seconds (an interval with months would not map to a timedelta).
_CONFIG_KEYS = ("compress_after", "drop_after", "start_offset", "end_offset")
EXISTING_JOBS_SQL = (
    "SELECT job_id, proc_name, hypertable_name, extract(epoch FROM schedule_interval), "
    + ", ".join(f"extract(epoch FROM (config->>'{key}')::interval)" for key in _CONFIG_KEYS)
    + " FROM timescaledb_information.jobs WHERE proc_name = ANY(%(procs)s)"
    " AND hypertable_schema = current_schema() ORDER BY job_id"
)


def existing_jobs(conn: psycopg.Connection) -> list[ExistingJob]:
    jobs = []
    for job_id, proc, relation, schedule, *values in conn.execute(EXISTING_JOBS_SQL, {"procs": list(POLICY_PROCS)}):
        config = {k: timedelta(seconds=float(v)) for k, v in zip(_CONFIG_KEYS, values, strict=True) if v is not None}
        jobs.append(
            ExistingJob(
                int(job_id),
                proc,
                relation,
                config,
                timedelta(seconds=float(schedule)) if schedule is not None else None,
            )
        )
    return jobs


@dataclass(frozen=True)
class PolicyChange:
    action: str  # "add" | "replace" | "remove" | "keep"
    proc: str
    relation: str
    statements: tuple[Statement, ...]


def plan_policies(options: StoreOptions, existing: list[ExistingJob]) -> list[PolicyChange]:
    """What to do so the store's jobs are exactly :func:`desired_policies`: a job whose settings match is
    kept (same job id, its statistics and schedule go on), a changed one is replaced, a missing one
    added, one no longer wanted (retention switched off) removed."""
    found = {(job.proc, job.relation): job for job in existing}
    changes = []
    for policy in desired_policies(options):
        job = found.pop((policy.proc, policy.relation), None)
        if job is None:
            changes.append(PolicyChange("add", policy.proc, policy.relation, (policy.add,)))
        elif job.config != policy.config or (policy.schedule is not None and job.schedule != policy.schedule):
            changes.append(PolicyChange("replace", policy.proc, policy.relation, (policy.remove, policy.add)))
        else:
            changes.append(PolicyChange("keep", policy.proc, policy.relation, ()))
    for (proc, relation), _job in sorted(found.items()):
        if relation in {HYPERTABLE, *(r.table for r in ROLLUPS)}:
            changes.append(PolicyChange("remove", proc, relation, (_remove(proc, relation),)))
    return changes


def chunk_interval_statement(options: StoreOptions) -> Statement:
    """New chunks get the configured interval (existing chunks keep theirs; no job involved)."""
    return Statement(
        f"SELECT set_chunk_time_interval('{HYPERTABLE}', %(chunk)s::interval)", {"chunk": options.chunk_interval}
    )


def apply_policies(conn: psycopg.Connection, options: StoreOptions) -> list[PolicyChange]:
    """Set the chunk interval and reconcile the policies (:func:`plan_policies`). Runs in the caller's
    transaction; returns what was done, for the log."""
    chunk_interval_statement(options).execute(conn)
    changes = plan_policies(options, existing_jobs(conn))
    for change in changes:
        for statement in change.statements:
            statement.execute(conn)
    return changes


# --- server settings -----------------------------------------------------------------------------------

MAX_POLICIES = len(desired_policies(StoreOptions(retention_days=1, rollup_retention_days=1)))
"""The most jobs one region store has (compression, retention, two refreshes, two rollup retentions)."""
PARALLEL_WORKERS = 8  # PostgreSQL's default max_parallel_workers, which max_worker_processes also serves


def worker_settings(*, databases: int, stores: int) -> dict[str, str]:
    """``max_worker_processes`` and ``timescaledb.max_background_workers`` for a server holding
    ``databases`` databases with the extension (each runs a scheduler, a background worker, all the time),
    ``stores`` of them region stores whose jobs may all run at once (a restart, a missed schedule).

    TimescaleDB's sizing rule: background workers = databases + concurrent jobs; worker processes =
    background workers + parallel workers + 1 (TimescaleDB's launcher). PostgreSQL's default of 8 worker
    processes is too small for four region stores on one server: jobs then fail with "failed to start a
    background worker"."""
    background = databases + stores * MAX_POLICIES
    return {
        "max_worker_processes": str(background + PARALLEL_WORKERS + 1),
        "timescaledb.max_background_workers": str(background),
        "max_parallel_workers": str(PARALLEL_WORKERS),
    }


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
