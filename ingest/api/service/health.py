"""Health: every store answers ``SELECT 1`` in time, the pipeline is healthy, a policy is loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from psycopg_pool import ConnectionPool

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.models import CheckPublic, HealthPublic
from ingest.api.service import store_jobs
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime


def health(*, runtime: Runtime, settings: ApiSettings) -> HealthPublic:
    """Run every check (stores in parallel, so N down regions cost one timeout, not N)."""
    stores: dict[str, Callable[[], CheckPublic]] = {
        "control": lambda: _store(runtime.control, "control", settings.health_timeout_s)
    }
    # A cell's replica checks the regions it hosts; the others are its peers' (their links: GET /api/v1/links).
    hosted = set(runtime.regions) if runtime.extras.get("cell") is not None else set(runtime.registry.regions)
    for region in sorted(hosted | set(runtime.regions)):
        stores[f"region:{region}"] = _region_check(runtime, region, settings.health_timeout_s)
    with ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="health") as executor:
        futures = {name: executor.submit(check) for name, check in stores.items()}
        checks = {name: future.result() for name, future in futures.items()}
    # --- store jobs (TimescaleDB policies): one "jobs:<region>" check per TimescaleDB store -------------
    reachable = {name.removeprefix("region:") for name, check in checks.items() if check.ok}
    checks.update(store_jobs.health_checks(runtime, settings, reachable=reachable))
    # --- end store jobs -------------------------------------------------------------------------------
    checks["pipeline"] = _pipeline(runtime)
    revision, checks["policy"] = _policy(runtime)
    status: Literal["ok", "degraded"] = "ok" if all(check.ok for check in checks.values()) else "degraded"
    return HealthPublic(status=status, policy_revision=revision, checks=checks)


def _region_check(runtime: Runtime, region: str, timeout_s: float) -> Callable[[], CheckPublic]:
    pool = runtime.regions.get(region)
    if pool is None:
        return lambda: CheckPublic(ok=False, detail=f"store {region!r}: no database configured")
    return lambda: _store(pool, region, timeout_s)


def _store(pool: ConnectionPool, store: str, timeout_s: float) -> CheckPublic:
    started = time.perf_counter()
    try:
        db.ping(pool, store=store, timeout_s=timeout_s)
    except StoreUnavailableError as exc:
        return CheckPublic(ok=False, detail=f"store {store!r} unreachable: {exc.reason}")
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return CheckPublic(ok=True, detail="reachable", latency_ms=latency_ms)


def _pipeline(runtime: Runtime) -> CheckPublic:
    if runtime.pipeline is None:
        return CheckPublic(ok=True, detail="no pipeline in this process (API only)")
    try:
        healthy = runtime.pipeline.healthy()
    except Exception as exc:  # a status probe must not turn health into a 500
        return CheckPublic(ok=False, detail=f"pipeline status failed: {type(exc).__name__}: {exc}")
    if healthy:
        return CheckPublic(ok=True, detail="healthy")
    detail = "unhealthy"
    try:
        snap = runtime.pipeline.snapshot()
    except Exception:  # the detail is a best effort on top of healthy() == False
        snap = {}
    if snap.get("problem"):
        detail += f": {snap['problem']}"
    if snap.get("broker_connected") is False:
        detail += ": broker not connected"
    if snap.get("subscription_error"):
        detail += f": {snap['subscription_error']}"
    if snap.get("last_error"):
        detail += f": {snap['last_error']}"
    return CheckPublic(ok=False, detail=detail)


def _policy(runtime: Runtime) -> tuple[str | None, CheckPublic]:
    try:
        revision = runtime.policy.revision
    except Exception as exc:  # an engine that cannot say its revision is not usable
        return None, CheckPublic(ok=False, detail=f"policy revision unavailable: {type(exc).__name__}: {exc}")
    if not revision:
        return None, CheckPublic(ok=False, detail="no policy loaded")
    held = getattr(runtime.policy, "held", None)  # ingest.policy_runtime.ActivePolicy: routing paused (OPA)
    if held:
        return revision, CheckPublic(ok=False, detail=f"routing paused: {held}")
    return revision, CheckPublic(ok=True, detail=f"revision {revision}")
