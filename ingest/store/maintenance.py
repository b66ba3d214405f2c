"""Background maintenance of the region stores, run by the ingest (every replica; one at a time per store).

On plain PostgreSQL, each run, per region store:

1. creates the daily partitions of ``readings`` from yesterday to ``partitions_ahead`` days ahead, and
   the partition of every day (inside the retention) that has rows in the default partition, moving
   those rows into it;
2. retention: drops the daily partitions that end before ``today - retention_days`` and deletes older
   rows from the default partition; deletes rollup rows older than ``rollup_retention_days`` (if set).

On TimescaleDB the same work is done by the database's own jobs (the policies set by
:mod:`ingest.store.timescale`). What they cannot do is refresh the rollups over late data older than their
refresh window: each run (and every ``late_refresh_interval`` in between) refreshes the ranges the writer
recorded (:mod:`ingest.store.late_data`).

Replicas coordinate with a session advisory lock per store (``pg_try_advisory_lock``): a replica that
does not get it skips that store for this run. Failures are logged and reported, never raised: the
next run tries again, and ingest is never blocked by maintenance (``lock_timeout`` on every DDL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from ingest.store import late_data, partitions
from ingest.store.migrate import store_backend
from ingest.store.options import StoreOptions
from ingest.store.rollups import ROLLUPS

log = logging.getLogger("ingest.store.maintenance")
_LOCK_KEY = 0x7E1E_0002


@dataclass
class MaintenanceReport:
    region: str
    backend: str | None = None
    created: list[str] = field(default_factory=list)
    moved_rows: int = 0
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0
    rollup_rows_deleted: int = 0
    rows_in_default: int = 0
    late_ranges: int = 0
    """TimescaleDB: recorded late ranges refreshed (then deleted) by this run."""
    late_windows: list[str] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None


class StoreMaintenance:
    """``run_once()`` maintains every region store; ``start()`` runs it in a daemon thread every
    ``options.maintenance_interval`` (first run at once) until ``stop()``."""

    def __init__(
        self,
        region_dsns: Mapping[str, str],
        options: StoreOptions | None = None,
        *,
        lock_timeout_ms: int = 5000,
        max_new_partitions: int = 400,
    ) -> None:
        self.region_dsns = dict(region_dsns)
        self.options = options or StoreOptions()
        self.lock_timeout_ms = lock_timeout_ms
        self.max_new_partitions = max_new_partitions
        self.last_reports: dict[str, MaintenanceReport] = {}
        self.last_run_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one run -------------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None, *, late_only: bool = False) -> dict[str, MaintenanceReport]:
        """Maintain every store; ``late_only``: only refresh the recorded late ranges (TimescaleDB)."""
        now = now or datetime.now(UTC)
        reports = {
            region: self.maintain(region, dsn, now, late_only=late_only)
            for region, dsn in sorted(self.region_dsns.items())
            # between full runs, no connection to a store the last full run found plain
            if not (late_only and getattr(self.last_reports.get(region), "backend", None) == "plain")
        }
        if not late_only:
            self.last_reports, self.last_run_at = reports, now
        return reports

    def maintain(self, region: str, dsn: str, now: datetime, *, late_only: bool = False) -> MaintenanceReport:
        report = MaintenanceReport(region)
        try:
            with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
                report.backend = store_backend(conn)
                timescale = report.backend == "timescaledb"
                if not timescale and (late_only or report.backend != "plain" or not partitions.is_partitioned(conn)):
                    report.skipped = (
                        "plain store: rollups kept at write"
                        if late_only and report.backend == "plain"
                        else "store not migrated"
                    )
                    return report
                locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
                if not locked or not locked[0]:
                    report.skipped = "another replica is maintaining this store"
                    return report
                try:
                    if timescale:  # the rest is done by TimescaleDB's policies
                        self._late(conn, report, now)
                    else:
                        self._plain(conn, report, now)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        except psycopg.Error as exc:
            lines = str(exc).strip().splitlines()
            report.error = lines[0] if lines else type(exc).__name__
            log.warning("maintenance of region store %s failed (will retry): %s", region, report.error)
        if report.late_ranges:
            log.info(
                "region store %s: refreshed the rollups over %d late range(s): %s",
                region,
                report.late_ranges,
                "; ".join(report.late_windows) or "all older than the retention",
            )
        if report.created or report.dropped or report.deleted_rows or report.rollup_rows_deleted:
            log.info(
                "region store %s: created %d partition(s) (moved %d rows from default), dropped %s, deleted %d "
                "old rows from default, %d rollup rows",
                region,
                len(report.created),
                report.moved_rows,
                report.dropped or "none",
                report.deleted_rows,
                report.rollup_rows_deleted,
            )
        return report

    def _late(self, conn: psycopg.Connection, report: MaintenanceReport, now: datetime) -> None:
        result = late_data.refresh_recorded(conn, retention=self.options.retention, now=now)
        report.late_ranges, report.late_windows = result.ranges, result.windows or []

    def _plain(self, conn: psycopg.Connection, report: MaintenanceReport, now: datetime) -> None:
        opts = self.options
        today = now.astimezone(UTC).date()
        horizon = partitions.day_start(today + timedelta(days=opts.partitions_ahead + 1))
        cutoff = partitions.day_start(today) - opts.retention if opts.retention is not None else None

        existing = partitions.list_partitions(conn)
        wanted = {today + timedelta(days=n) for n in range(-1, opts.partitions_ahead + 1)}
        wanted |= set(partitions.days_in_default(conn, since=cutoff, until=horizon))
        missing = sorted(
            day for day in wanted if day not in existing and (cutoff is None or partitions.bounds(day)[1] > cutoff)
        )
        for day in missing[: self.max_new_partitions]:
            moved = partitions.create_partition(conn, day, lock_timeout_ms=self.lock_timeout_ms)
            if moved is not None:
                report.created.append(partitions.partition_name(day))
                report.moved_rows += moved

        if cutoff is not None:
            for day, name in sorted(partitions.list_partitions(conn).items()):
                if partitions.bounds(day)[1] <= cutoff:
                    partitions.drop_partition(conn, name, lock_timeout_ms=self.lock_timeout_ms)
                    report.dropped.append(name)
            report.deleted_rows = partitions.delete_from_default(conn, before=cutoff)

        if opts.rollup_retention is not None:
            rollup_cutoff = partitions.day_start(today) - max(opts.rollup_retention, opts.retention or timedelta(0))
            with conn.transaction():
                for rollup in ROLLUPS:
                    report.rollup_rows_deleted += conn.execute(
                        f"DELETE FROM {rollup.table} WHERE bucket < %s", (rollup_cutoff,)
                    ).rowcount
        report.rows_in_default = partitions.rows_in_default(conn)

    # --- thread runner -------------------------------------------------------------------------

    def start(self, *, first_run_now: bool = True) -> None:
        """Run every interval in a daemon thread; ``first_run_now=False`` when the caller just ran it."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(first_run_now,), name="store-maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self, run_now: bool) -> None:
        """A full run every ``maintenance_interval`` (the first at once unless the caller just ran it); in
        between, every ``late_refresh_interval``, only the late ranges (a connection per store; nothing on plain
        stores)."""
        full = self.options.maintenance_interval.total_seconds()
        late = self.options.late_refresh_interval.total_seconds()
        next_full = 0.0 if run_now else time.monotonic() + full
        while not self._stop.is_set():
            late_only = time.monotonic() < next_full
            if not late_only:
                next_full = time.monotonic() + full
            try:
                self.run_once(late_only=late_only)
            except Exception:  # never let the thread die: log and try again next interval
                log.exception("store maintenance run failed")
            self._stop.wait(max(0.0, min(late, next_full - time.monotonic())))
