"""Job health of the region stores: TimescaleDB's policy jobs (:mod:`ingest.store.jobs`), read from every
region store in parallel, for ``GET /health`` (a ``jobs:<region>`` check per TimescaleDB store),
``GET /stores/jobs`` (the dashboard's table) and ``GET /metrics`` (gauges per region and job).

Answers are cached for :data:`CACHE_S` per process: the dashboard polls the health every 2 s and
Prometheus scrapes the metrics, and job statistics change at the jobs' pace (minutes).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from prometheus_client import Gauge
from psycopg_pool import ConnectionPool

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.models import CheckPublic, StoreJobPublic, StoreJobsPublic
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime
from ingest.store import jobs as store_jobs
from ingest.store.options import StoreOptions

CACHE_S = 15.0
_LABELS = ["region", "job"]
_FAILURES = Gauge(
    "ingest_store_job_consecutive_failures", "Failed runs of a TimescaleDB store job since its last success", _LABELS
)
_LAST_OK = Gauge(
    "ingest_store_job_last_run_success",
    "1 when the job's last run succeeded, 0 when it failed (absent before the first run)",
    _LABELS,
)
_NEXT = Gauge("ingest_store_job_next_start_timestamp_seconds", "When the job runs next (Unix time)", _LABELS)
_PROBLEM = Gauge("ingest_store_job_problem", "1 when the job is failing, overdue, paused or missing", _LABELS)

_lock = threading.Lock()
_cache: dict[tuple[int, str], tuple[float, StoreJobsPublic]] = {}  # (id(runtime), region) -> (monotonic, answer)


def store_jobs_by_region(
    runtime: Runtime,
    settings: ApiSettings,
    *,
    regions: set[str] | None = None,
) -> dict[str, StoreJobsPublic]:
    """The job health of every region store (or of ``regions``), each answer cached :data:`CACHE_S`;
    updates the gauges."""
    wanted = sorted(set(runtime.regions) if regions is None else set(regions) & set(runtime.regions))
    answer: dict[str, StoreJobsPublic] = {}
    with _lock:
        for region in wanted:
            hit = _cache.get((id(runtime), region))
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                answer[region] = hit[1]
    stale = [region for region in wanted if region not in answer]
    if stale:
        options = StoreOptions.from_settings(runtime.settings)
        now = datetime.now(UTC)
        with ThreadPoolExecutor(max_workers=len(stale), thread_name_prefix="store-jobs") as executor:
            futures = {r: executor.submit(_read, r, runtime.regions[r], settings, options, now) for r in stale}
            fresh = {region: future.result() for region, future in futures.items()}
        with _lock:
            for region, store in fresh.items():
                _cache[(id(runtime), region)] = (time.monotonic(), store)
        answer.update(fresh)
        _export(fresh)
    return {region: answer[region] for region in wanted}


def _read(
    region: str, pool: ConnectionPool, settings: ApiSettings, options: StoreOptions, now: datetime
) -> StoreJobsPublic:
    try:
        with db.read(
            pool,
            store=region,
            pool_timeout_s=settings.health_timeout_s,
            statement_timeout_ms=int(settings.health_timeout_s * 1000),
        ) as cur:
            conn = cur.connection
            if not store_jobs.is_timescaledb(conn):
                return StoreJobsPublic(region=region, backend="plain", ok=True)
            states = store_jobs.read_jobs(conn, options)
    except StoreUnavailableError as exc:
        return StoreJobsPublic(region=region, backend=None, ok=False, error=exc.reason)
    jobs = [_public(state, now) for state in states]
    return StoreJobsPublic(region=region, backend="timescaledb", ok=all(j.problem is None for j in jobs), jobs=jobs)


def _public(state: store_jobs.JobState, now: datetime) -> StoreJobPublic:
    return StoreJobPublic(
        name=state.name,
        job_id=state.job_id,
        scheduled=state.scheduled,
        job_status=state.job_status,
        last_run_status=state.last_run_status,
        last_run_started_at=state.last_run_started_at,
        last_successful_finish=state.last_successful_finish,
        next_start=state.next_start,
        total_runs=state.total_runs,
        total_failures=state.total_failures,
        consecutive_failures=state.consecutive_failures,
        last_error=state.last_error,
        problem=state.problem(now),
    )


def _export(answer: dict[str, StoreJobsPublic]) -> None:
    for region, store in answer.items():
        for gauge in (_FAILURES, _LAST_OK, _NEXT, _PROBLEM):  # jobs that are gone leave no stale series
            for labels in [k for k in _series(gauge) if k[0] == region]:
                gauge.remove(*labels)
        for job in store.jobs:
            _FAILURES.labels(region, job.name).set(job.consecutive_failures)
            _PROBLEM.labels(region, job.name).set(1 if job.problem else 0)
            if job.last_run_status is not None:
                _LAST_OK.labels(region, job.name).set(1 if job.last_run_status == "Success" else 0)
            if job.next_start is not None:
                _NEXT.labels(region, job.name).set(job.next_start.timestamp())


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _series(gauge: Gauge) -> list[tuple[str, ...]]:
    # prometheus_client keeps a labelled gauge's children by their label values (tuples of str)
    return [tuple(labels) for labels in gauge._metrics]


def health_checks(runtime: Runtime, settings: ApiSettings, *, reachable: set[str]) -> dict[str, CheckPublic]:
    """``jobs:<region>`` for every reachable TimescaleDB store (plain stores have no jobs; an unreachable
    one is reported by its ``region:<name>`` check and not waited for twice)."""
    checks = {}
    for region, store in store_jobs_by_region(runtime, settings, regions=reachable).items():
        if store.backend != "timescaledb":
            continue
        problems = [f"{job.name}: {job.problem}" for job in store.jobs if job.problem]
        checks[f"jobs:{region}"] = CheckPublic(
            ok=not problems,
            detail="; ".join(problems) if problems else f"{len(store.jobs)} TimescaleDB jobs ok",
        )
    return checks
