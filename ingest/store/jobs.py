"""Health of a TimescaleDB store's background jobs (the policies of :mod:`ingest.store.timescale`).

TimescaleDB runs compression, retention and the aggregates' refreshes in its own scheduler. A job that
fails (e.g. ``cannot drop portal "" while it is being set up`` with TimescaleDB < 2.28.4 / 2.31.2 on
PostgreSQL 15.20 / 16.16 / 17.12 / 18.7, or ``failed to start a background worker`` when
``max_worker_processes`` is too small for the databases of a server) says so only in
``timescaledb_information``: this module reads it (:func:`read_jobs`) and judges each job
(:meth:`JobState.problem`): failing (its last runs failed), overdue (its next start long past), paused,
or missing (a policy the settings ask for has no job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from ingest.store.options import StoreOptions
from ingest.store.timescale import POLICY_PROCS, desired_policies

OVERDUE_GRACE = timedelta(minutes=15)
"""A job is overdue when its next start is this long (or one schedule interval, if longer) past."""

# consecutive failures: failed runs (or crashes: no result and no process) since the last success
JOBS_SQL = """
SELECT j.job_id, j.proc_name, j.hypertable_name AS relation, j.scheduled, j.schedule_interval,
       s.last_run_status, s.job_status,
       -- TimescaleDB says -infinity for "never" (before the first run), which has no datetime
       CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END AS last_run_started_at,
       CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END AS last_successful_finish,
       CASE WHEN isfinite(s.next_start) THEN s.next_start END AS next_start,
       coalesce(s.total_runs, 0) AS total_runs, coalesce(s.total_failures, 0) AS total_failures,
       f.consecutive_failures, f.last_error
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE h.start_time > coalesce(ok.at, '-infinity')) AS consecutive_failures,
           (array_agg(h.err_message ORDER BY h.start_time DESC))[1] AS last_error
    FROM timescaledb_information.job_history h
    LEFT JOIN LATERAL (
        SELECT max(g.start_time) AS at FROM timescaledb_information.job_history g
        WHERE g.job_id = j.job_id AND g.succeeded
    ) ok ON TRUE
    WHERE h.job_id = j.job_id AND (h.succeeded IS FALSE OR (h.succeeded IS NULL AND h.pid IS NULL))
) f
WHERE j.proc_name = ANY(%(procs)s) AND j.hypertable_schema = current_schema()
ORDER BY j.job_id
"""


@dataclass(frozen=True)
class JobState:
    job_id: int | None
    proc: str
    relation: str
    scheduled: bool
    schedule_interval: timedelta | None
    last_run_status: str | None  # 'Success' | 'Failed' | None (never ran)
    job_status: str | None  # 'Scheduled' | 'Running' | 'Paused'
    last_run_started_at: datetime | None
    last_successful_finish: datetime | None
    next_start: datetime | None
    total_runs: int
    total_failures: int
    consecutive_failures: int
    last_error: str | None

    @property
    def name(self) -> str:
        """``policy_compression(readings)``: what the job does, to what."""
        return f"{self.proc}({self.relation})"

    def problem(self, now: datetime) -> str | None:
        """Why this job needs attention, or None."""
        if self.job_id is None:
            return "missing: the settings ask for this policy but the store has no such job"
        if not self.scheduled:
            return "paused"
        if self.consecutive_failures or self.last_run_status == "Failed":
            return (
                f"failing: {max(self.consecutive_failures, 1)} consecutive failure(s), last error: "
                f"{self.last_error or 'unknown (see the server log)'}"
            )
        grace = max(OVERDUE_GRACE, self.schedule_interval or timedelta(0))
        if self.job_status != "Running" and self.next_start is not None and self.next_start < now - grace:
            return f"overdue: next start {self.next_start.isoformat()} is past (no background worker free?)"
        return None


def is_timescaledb(conn: psycopg.Connection) -> bool:
    """The store has TimescaleDB's job views (the extension is created in its database)."""
    row = conn.execute("SELECT to_regclass('timescaledb_information.job_stats') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read_jobs(conn: psycopg.Connection, options: StoreOptions | None = None) -> list[JobState]:
    """The store's policy jobs, plus a ``missing`` entry for each policy the settings ask for (``options``)
    that has no job. Needs TimescaleDB (:func:`is_timescaledb`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(JOBS_SQL, {"procs": list(POLICY_PROCS)}).fetchall()
    jobs = [
        JobState(
            job_id=int(r["job_id"]),
            proc=r["proc_name"],
            relation=r["relation"],
            scheduled=bool(r["scheduled"]),
            schedule_interval=r["schedule_interval"],
            last_run_status=r["last_run_status"],
            job_status=r["job_status"],
            last_run_started_at=r["last_run_started_at"],
            last_successful_finish=r["last_successful_finish"],
            next_start=r["next_start"],
            total_runs=int(r["total_runs"]),
            total_failures=int(r["total_failures"]),
            consecutive_failures=int(r["consecutive_failures"] or 0),
            last_error=r["last_error"],
        )
        for r in rows
    ]
    if options is not None:
        present = {(j.proc, j.relation) for j in jobs}
        for policy in desired_policies(options):
            if (policy.proc, policy.relation) not in present:
                jobs.append(
                    JobState(
                        None,
                        policy.proc,
                        policy.relation,
                        False,
                        policy.schedule,
                        None,
                        None,
                        None,
                        None,
                        None,
                        0,
                        0,
                        0,
                        None,
                    )
                )
    return jobs
