"""Assembles the ingest service: validates configuration, migrates stores, loads the policy,
starts the consumer and builds the API. ``ingest serve`` runs it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from ingest.auth.bootstrap import bootstrap_admin
from ingest.cells.link import LinkSender
from ingest.cells.receive import CellContext
from ingest.cells.topology import Topology, TopologyError, check_against_registry, check_raw_processing, load_topology
from ingest.config import IngestSettings
from ingest.errors import ConfigError, StoreUnavailableError
from ingest.pipeline.consumer import Consumer
from ingest.pipeline.router import Router
from ingest.pipeline.stats import PipelineStats
from ingest.pipeline.transforms import Pseudonymizer
from ingest.pipeline.watchdog import Watchdog
from ingest.policy_runtime import PolicyRuntime
from ingest.quarantine.service import QuarantineRetention, QuarantineService
from ingest.registry import Registry, load_registry
from ingest.registry_sync import RegistrySync
from ingest.runtime import Runtime
from ingest.store.maintenance import StoreMaintenance
from ingest.store.migrate import enable_timescaledb, migrate
from ingest.store.options import StoreOptions
from ingest.volumes.metrics import publish
from ingest.volumes.tracker import VolumeTracker
from ingest.volumes.warnings import PolicyThresholds
from policy import PolicyEngine, load_engine

log = logging.getLogger("ingest.service")


def check_regions(settings: IngestSettings, registry: Registry, topology: Topology | None = None) -> None:
    """Every region this ingest writes needs a DSN, and every DSN a region: name both sides on mismatch. Without
    cells that is every region of the registry; in a cell, exactly the regions the cell hosts."""
    if topology is not None and settings.cell is not None:
        wanted = set(topology.cells[settings.cell].regions)
        whose = f"cell {settings.cell} of {settings.topology_file}"
    else:
        wanted, whose = set(registry.regions), str(settings.registry_file)
    missing = sorted(wanted - set(settings.region_dsns))
    unknown = sorted(set(settings.region_dsns) - wanted)
    if missing:
        raise ConfigError(f"INGEST_REGION_DSNS: no DSN for region(s) {missing} of {whose}")
    if unknown:
        raise ConfigError(f"INGEST_REGION_DSNS: region(s) {unknown} are not regions of {whose}")


def load_cell(settings: IngestSettings, registry: Registry) -> Topology | None:
    """The topology, checked against the registry, when this ingest serves a cell; None otherwise."""
    if settings.topology_file is None:
        return None
    topology = load_topology(settings.topology_file)
    check_against_registry(topology, registry, settings.topology_file)
    if settings.cell not in topology.cells:
        raise TopologyError(
            f"INGEST_CELL: {settings.cell!r} is not a cell of {settings.topology_file} "
            f"(cells: {sorted(topology.cells)})"
        )
    return topology


def prepare_region(settings: IngestSettings, region: str) -> bool:
    """Migrate one region store and apply its TimescaleDB policies; return whether TimescaleDB is in use.
    StoreUnavailableError names the region when it cannot be reached (or migrated)."""
    dsn = settings.region_dsns[region]
    migrate(dsn, "region", store=region, timescaledb=settings.timescaledb)
    return enable_timescaledb(
        dsn, store=region, mode=settings.timescaledb, options=StoreOptions.from_settings(settings)
    )


def prepare_stores(settings: IngestSettings, *, strict: bool = True) -> tuple[dict[str, bool], set[str]]:
    """Apply migrations to the control and every region store; return (region -> TimescaleDB in use, regions
    that could not be reached). The control store is required. ``strict`` (``ingest check``): an unreachable
    region is an error too; otherwise it is left for its writer to migrate when it comes back."""
    migrate(settings.control_dsn, "control", store="control")
    bootstrap_admin(settings)  # the first admin, from INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE, when no user exists
    timescale: dict[str, bool] = {}
    unreachable: set[str] = set()
    for region in settings.region_dsns:
        try:
            timescale[region] = prepare_region(settings, region)
        except StoreUnavailableError as exc:
            if strict:
                raise
            unreachable.add(region)
            log.warning(
                "region %s is unreachable at start (%s): its messages wait, and it is migrated when it comes back",
                region,
                exc.reason,
            )
    return timescale, unreachable


def build_policy(settings: IngestSettings) -> PolicyEngine:
    return load_engine(
        settings.policy_engine,
        policy_dir=settings.policy_dir,
        opa_url=settings.opa_url,
        cache_size=settings.decision_cache_size,
    )


class IngestService:
    """The running service: one consumer (flush thread + MQTT) and the API's pools."""

    def __init__(self, settings: IngestSettings, *, on_fatal: Callable[[str], None] | None = None) -> None:
        """``on_fatal(reason)``: called once when a worker thread dies (``ingest serve`` exits non-zero)."""
        self.settings = settings
        self.registry = load_registry(settings.registry_file)
        self.topology = load_cell(settings, self.registry)
        check_regions(settings, self.registry, self.topology)
        self.timescale, unreachable = prepare_stores(settings, strict=False)
        # Sites and devices changed through the API overlay the file; every replica follows (registry_sync).
        self.registry_sync = RegistrySync(
            base=self.registry, control_dsn=settings.control_dsn, refresh_s=settings.registry_refresh_s
        )
        self.registry = self.registry_sync.load().registry
        # The router holds the ActivePolicy: an activated revision decides the next message (no restart).
        self.policy_runtime = PolicyRuntime.from_settings(settings)
        self.policy = self.policy_runtime.active
        self.cell: CellContext | None = None
        self.link: LinkSender | None = None
        if self.topology is not None and settings.cell is not None and settings.topology_file is not None:
            # A site may be served here only if its raw payload may be processed in this cell's country.
            check_raw_processing(
                self.topology, self.registry, self.policy, settings.topology_file, cells=[settings.cell]
            )
            self.cell = CellContext(settings.cell, self.topology)
            sends_to, _ = self.topology.peers(settings.cell, self.registry)
            if sends_to:
                self.link = LinkSender(
                    cell=settings.cell,
                    peers=sends_to,
                    control_dsn=settings.control_dsn,
                    window=settings.link_window,
                    resend_s=settings.link_resend_s,
                )
        self.stats = PipelineStats(Watchdog(settings.watchdog_stall_s, on_fatal))
        self.stats.policy_revision = self.policy.revision
        self.policy_runtime.on_change(lambda revision: setattr(self.stats, "policy_revision", revision))
        self.volumes = (
            VolumeTracker(
                settings.control_dsn,
                thresholds=PolicyThresholds(settings.policy_dir),
                sync_s=settings.volume_sync_s,
                warn_ratio=settings.volume_warn_ratio,
            )
            if settings.measure_volumes
            else None
        )
        self.router = Router(
            registry=self.registry,
            policy=self.policy,
            pseudonymizer=Pseudonymizer(settings.pseudonymization_key.get_secret_value().encode()),
            max_bytes=settings.max_message_bytes,
            cell=self.cell,
            volumes=self.volumes,
        )
        self.consumer = Consumer(
            settings, self.router, self.stats, prepare_region=self._prepare_late, cell=self.cell, link=self.link
        )
        self.consumer.mark_unprepared(unreachable)
        self.maintenance = StoreMaintenance(settings.region_dsns, StoreOptions.from_settings(settings))
        self.runtime = Runtime(
            settings=settings,
            registry=self.registry,
            control=ConnectionPool(
                settings.control_dsn,
                min_size=1,
                max_size=4,
                open=False,
                check=ConnectionPool.check_connection,
                kwargs={"connect_timeout": 5},
            ),
            regions={
                name: ConnectionPool(
                    dsn,
                    min_size=1,
                    max_size=4,
                    open=False,
                    check=ConnectionPool.check_connection,
                    kwargs={"connect_timeout": 5},
                )
                for name, dsn in settings.region_dsns.items()
            },
            policy=self.policy,
            pipeline=self.stats,
            quarantine=(
                quarantine := QuarantineService(
                    settings, self.router, writers=self.consumer.new_writer, control=self.consumer.new_control_writer
                )
            ),
            registry_sync=self.registry_sync,
            extras={
                "timescaledb": self.timescale,
                "policy_runtime": self.policy_runtime,
                "cell": self.cell,
                "link": self.link,
                "volumes": self.volumes,
            },
        )
        # A registry swap reaches the router (drops its memoised flows) and the API, like a policy activation.
        self.quarantine_retention = QuarantineRetention(quarantine, settings)
        self.registry_sync.on_change(self.router.replace_registry)
        self.registry_sync.on_change(self._registry_changed)

    def _prepare_late(self, region: str) -> None:
        """A region unreachable at start is back: migrate it before its first write."""
        self.timescale[region] = prepare_region(self.settings, region)
        log.info("region %s reached and migrated", region)

    @property
    def fatal(self) -> str | None:
        """Why the pipeline stopped for good (a worker thread died), or None."""
        return self.stats.watchdog.fatal

    def _registry_changed(self, registry: Registry) -> None:
        self.registry = self.runtime.registry = registry

    def start(self) -> None:
        self.runtime.control.open(wait=False)
        for pool in self.runtime.regions.values():
            pool.open(wait=False)
        self.policy_runtime.start()
        # Partitions of today and the days ahead exist before the first write: rows of those days never land
        # in the default partition, so no move of rows races with the first writes and reads.
        self.maintenance.run_once()
        if self.volumes is not None:
            try:  # every replica's records before the first message (the store is migrated: it is up)
                self.volumes.sync()
            except Exception as exc:
                log.warning("measured volumes: first sync failed, retrying in the background: %s", exc)
            self.volumes.start()
            volumes = self.volumes
            publish(
                lambda: volumes.routes(
                    self.registry.sites,
                    self.registry.regions,
                    self.registry.candidate_regions,
                )
            )
        self.consumer.start()
        if self.link is not None:
            self.link.start(self.consumer.client)
        self.maintenance.start(first_run_now=False)
        self.quarantine_retention.start()
        self.registry_sync.start()
        log.info(
            "ingest started: regions %s, policy %s (%s)",
            sorted(self.settings.region_dsns),
            self.settings.policy_engine,
            self.policy.revision,
        )

    def stop(self) -> None:
        self.registry_sync.stop()
        self.quarantine_retention.stop()
        self.maintenance.stop()
        self.policy.close()  # a flush waiting on a paused policy (OPA: broken invariants) gives up: nothing acked
        if self.link is not None:
            self.link.stop()
        self.consumer.stop()
        if self.volumes is not None:
            self.volumes.stop()
        self.policy_runtime.stop()
        self.runtime.control.close()
        for pool in self.runtime.regions.values():
            pool.close()
        log.info("ingest stopped")

    def app(self) -> FastAPI:
        from ingest.api.app import create_app

        app = create_app(self.runtime)

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            self.start()
            try:
                yield
            finally:
                self.stop()

        app.router.lifespan_context = lifespan
        return app
