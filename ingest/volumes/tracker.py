"""The router's hook for measured volumes, and the thread that shares them through the control store.

``VolumeTracker`` answers, for one message, the ``volume`` of the policy input of each (site, region): the
larger of what the registry declares and what was measured, counter by counter, *including the message's
own subjects* (the contract counts the flow being decided). After the router has placed the message's
rows, ``record`` remembers which subjects went where. Nothing on that path does I/O: a background thread
writes this replica's records to the control store and reads everyone else's every ``sync_s`` seconds.
See docs/volumes.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any

from ingest.registry import Site
from ingest.volumes import store
from ingest.volumes.counter import Counts, Route, Row, SubjectCounter
from ingest.volumes.warnings import PolicyThresholds, VolumeWarning
from policy import Flow

log = logging.getLogger("ingest.volumes")

_MEASURED_FIELDS = ("individuals_ytd", "sensitive_individuals_ytd", "individuals_12m", "sensitive_individuals_12m")
_MEMO_SIZE = 4096


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class RouteVolume:
    """One (site, region) as the compliance view shows it."""

    site_id: str
    region: str
    origin: str
    destination: str
    measured: Counts
    declared: dict[str, int]
    effective: dict[str, int]
    warnings: list[VolumeWarning]

    def to_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "region": self.region,
            "origin": self.origin,
            "destination": self.destination,
            "measured": self.measured.as_volume(),
            "declared": self.declared,
            "effective": self.effective,
            "warnings": [w.to_json() for w in self.warnings],
        }


class VolumeTracker:
    """Measured volumes per (site, region): the router's hook, the API's source, the store's writer."""

    def __init__(
        self,
        control_dsn: str | None,
        *,
        thresholds: PolicyThresholds | None = None,
        sync_s: float = 2.0,
        warn_ratio: float = 0.8,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.control_dsn = control_dsn
        self.thresholds = thresholds
        self.sync_s = sync_s
        self.warn_ratio = warn_ratio
        self._today = today
        self._counter = SubjectCounter(today())
        self._day_ends = 0.0  # epoch seconds at which the windows' day ends: not asked for the date before (hot path)
        self._lock = threading.Lock()
        self._pending: list[Row] = []
        self._since: datetime | None = None
        self._memo: dict[tuple[int, Counts], tuple[Flow, Flow, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crossed: dict[tuple[Route, str, int], str] = {}
        self.last_sync_error: str | None = None

    # --- the router's hook (no I/O) -------------------------------------------------------------------

    def measured_flow(self, flow: Flow, counts: Counts) -> tuple[Flow, dict[str, Any]]:
        """``flow`` with its volume raised to ``counts`` (what :meth:`counts_with` gave for its route and a message's
        subjects: a routing plan is keyed on them, so its flows are raised with the very same, even if another
        replica's records arrived since), and its policy input as logged. The same object for the same counts (the
        policy cache keys on it)."""
        with self._lock:
            self._roll_day()
            key = (id(flow), counts)
            found = self._memo.get(key)
            if found is not None and found[0] is flow:
                return found[1], found[2]
        declared = flow.volume.model_dump()
        raised = {**declared, **{k: max(int(declared.get(k, 0)), v) for k, v in counts.as_volume().items()}}
        measured = flow if raised == declared else flow.model_copy(update={"volume": type(flow.volume)(**raised)})
        dumped = measured.model_dump(mode="json")
        with self._lock:
            # The entry holds `flow` itself: while it lives, no other flow can get the id in its key.
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()  # cheaper than an LRU on every hit; refilled from the next messages
            self._memo[key] = (flow, measured, dumped)
        return measured, dumped

    def counts_with(self, site_id: str, regions: Iterable[str], subjects: Mapping[bytes, bool]) -> tuple[Counts, ...]:
        """The counts of each (site, region) as if ``subjects`` were transferred there today, without recording:
        what :meth:`measured_flow` raises the flow's volume with. The router keys its routing plans on them
        (the same counts give the same measured flows, hence the same decisions)."""
        with self._lock:
            self._roll_day()
            return tuple(self._counter.with_subjects((site_id, region), subjects) for region in regions)

    def record(self, site_id: str, regions: Iterable[str], subjects: Mapping[bytes, bool]) -> None:
        """The message's personal data was stored in ``regions``: count its subjects there from today."""
        with self._lock:
            self._roll_day()
            for region in regions:
                self._pending += self._counter.record((site_id, region), subjects)

    # --- the compliance view ------------------------------------------------------------------------------

    def counts(self, site_id: str, region: str) -> Counts:
        with self._lock:
            self._roll_day()
            return self._counter.counts((site_id, region))

    def routes(
        self, sites: Mapping[str, Site], regions: Mapping[str, Any], candidates: Callable[[Site], list[str]]
    ) -> list[RouteVolume]:
        """Every cross-border (site, candidate region) of the registry with its measured, declared and
        effective volume and its threshold warnings."""
        out = []
        for site_id, site in sorted(sites.items()):
            for region in candidates(site):
                country = regions[region].country
                if country == site.country:
                    continue
                measured = self.counts(site_id, region)
                declared = {k: int(v) for k, v in site.volume.model_dump().items()}
                effective = {**declared, **{k: max(declared.get(k, 0), v) for k, v in measured.as_volume().items()}}
                effective["individuals_12m"] = max(effective.get("individuals_12m", 0), effective["individuals_ytd"])
                effective["sensitive_individuals_12m"] = max(
                    effective.get("sensitive_individuals_12m", 0), effective["sensitive_individuals_ytd"]
                )
                warnings = (
                    self.thresholds.warnings(
                        site.country, country, effective, ratio=self.warn_ratio, ciio=site.entity.ciio
                    )
                    if self.thresholds
                    else []
                )
                out.append(RouteVolume(site_id, region, site.country, country, measured, declared, effective, warnings))
                self._log_crossings((site_id, region), warnings)
        return out

    def _log_crossings(self, route: Route, warnings: list[VolumeWarning]) -> None:
        for w in warnings:
            key = (route, w.counter, w.limit)
            if self._crossed.get(key) != w.status:
                self._crossed[key] = w.status
                log.warning(
                    "transfer volume %s -> %s: %s %s of %s (%s: %s from there)",
                    route[0],
                    route[1],
                    w.counter,
                    w.value,
                    w.limit,
                    w.law,
                    w.becomes,
                )

    # --- sharing through the control store ----------------------------------------------------------------

    def _roll_day(self) -> None:
        if time.time() < self._day_ends:
            return
        today = self._today()
        if self._counter.set_day(today):
            self._memo.clear()
        self._day_ends = datetime.combine(today + timedelta(days=1), day_time(0), UTC).timestamp()

    def sync(self) -> None:
        """Write this replica's new records, then read every replica's changes (one transaction each)."""
        if not self.control_dsn:
            return
        import psycopg

        with self._lock:
            pending, self._pending = self._pending, []
            horizon = self._counter.windows.horizon
        try:
            with psycopg.connect(self.control_dsn, connect_timeout=5) as conn:
                store.write(conn, pending)
                conn.commit()
                rows, newest = store.read_since(conn, horizon, self._since)
                conn.commit()
        except Exception as exc:  # the store is down: keep the records for the next round
            with self._lock:
                self._pending = pending + self._pending
            self.last_sync_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_sync_error = None
        with self._lock:
            self._since = newest
            if self._counter.merge_rows(rows):
                self._memo.clear()

    def prune(self) -> int:
        if not self.control_dsn:
            return 0
        import psycopg

        with psycopg.connect(self.control_dsn, connect_timeout=5) as conn:
            return store.prune(conn, self._counter.windows.horizon)

    def start(self) -> None:
        if self._thread is not None or not self.control_dsn:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="volume-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.sync()  # the last records of this replica
        except Exception as exc:
            log.warning("volume sync at stop failed: %s", exc)

    def _run(self) -> None:
        pruned_on: date | None = None
        while not self._stop.is_set():
            try:
                self.sync()
                if pruned_on != self._today():
                    self.prune()
                    pruned_on = self._today()
            except Exception as exc:
                log.warning("volume sync failed (retrying in %.0f s): %s", self.sync_s, exc)
            self._stop.wait(self.sync_s)
