"""Assembles the ingest service: validates configuration, migrates stores, loads the policy,
starts the consumer and builds the API. ``ingest serve`` runs it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from ingest.auth.bootstrap import bootstrap_admin
from ingest.config import IngestSettings
from ingest.errors import ConfigError
from ingest.pipeline.consumer import Consumer
from ingest.pipeline.router import Router
from ingest.pipeline.stats import PipelineStats
from ingest.pipeline.transforms import Pseudonymizer
from ingest.policy_runtime import PolicyRuntime
from ingest.quarantine import QuarantineService
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


def check_regions(settings: IngestSettings, registry: Registry) -> None:
    """Every region of the registry needs a DSN, and every DSN a region: name both sides on mismatch."""
    missing = sorted(set(registry.regions) - set(settings.region_dsns))
    unknown = sorted(set(settings.region_dsns) - set(registry.regions))
    if missing:
        raise ConfigError(f"INGEST_REGION_DSNS: no DSN for region(s) {missing} of {settings.registry_file}")
    if unknown:
        raise ConfigError(f"INGEST_REGION_DSNS: region(s) {unknown} are not declared in {settings.registry_file}")


def prepare_stores(settings: IngestSettings) -> dict[str, bool]:
    """Apply migrations to the control and every region store; return region -> TimescaleDB in use."""
    migrate(settings.control_dsn, "control", store="control")
    bootstrap_admin(settings)  # the first admin, from INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE, when no user exists
    timescale: dict[str, bool] = {}
    options = StoreOptions.from_settings(settings)
    for region, dsn in settings.region_dsns.items():
        migrate(dsn, "region", store=region, timescaledb=settings.timescaledb)
        timescale[region] = enable_timescaledb(dsn, store=region, mode=settings.timescaledb, options=options)
    return timescale


def build_policy(settings: IngestSettings) -> PolicyEngine:
    return load_engine(
        settings.policy_engine,
        policy_dir=settings.policy_dir,
        opa_url=settings.opa_url,
        cache_size=settings.decision_cache_size,
    )


class IngestService:
    """The running service: one consumer (flush thread + MQTT) and the API's pools."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.registry = load_registry(settings.registry_file)
        check_regions(settings, self.registry)
        self.timescale = prepare_stores(settings)
        # Sites and devices changed through the API overlay the file; every replica follows (registry_sync).
        self.registry_sync = RegistrySync(base=self.registry, control_dsn=settings.control_dsn,
                                          refresh_s=settings.registry_refresh_s)
        self.registry = self.registry_sync.load().registry
        # The router holds the ActivePolicy: an activated revision decides the next message (no restart).
        self.policy_runtime = PolicyRuntime.from_settings(settings)
        self.policy = self.policy_runtime.active
        self.stats = PipelineStats()
        self.stats.policy_revision = self.policy.revision
        self.policy_runtime.on_change(lambda revision: setattr(self.stats, "policy_revision", revision))
        self.volumes = VolumeTracker(
            settings.control_dsn, thresholds=PolicyThresholds(settings.policy_dir), sync_s=settings.volume_sync_s,
            warn_ratio=settings.volume_warn_ratio,
        ) if settings.measure_volumes else None
        self.router = Router(
            registry=self.registry,
            policy=self.policy,
            pseudonymizer=Pseudonymizer(settings.pseudonymization_key.get_secret_value().encode()),
            max_bytes=settings.max_message_bytes,
            volumes=self.volumes,
        )
        self.consumer = Consumer(settings, self.router, self.stats)
        self.maintenance = StoreMaintenance(settings.region_dsns, StoreOptions.from_settings(settings))
        self.runtime = Runtime(
            settings=settings,
            registry=self.registry,
            control=ConnectionPool(settings.control_dsn, min_size=1, max_size=4, open=False,
                                   check=ConnectionPool.check_connection,
                                   kwargs={"connect_timeout": 5}),
            regions={name: ConnectionPool(dsn, min_size=1, max_size=4, open=False,
                                          check=ConnectionPool.check_connection,
                                          kwargs={"connect_timeout": 5})
                     for name, dsn in settings.region_dsns.items()},
            policy=self.policy,
            pipeline=self.stats,
            quarantine=QuarantineService(settings, self.router),
            registry_sync=self.registry_sync,
            extras={"timescaledb": self.timescale, "policy_runtime": self.policy_runtime, "volumes": self.volumes},
        )
        # A registry swap reaches the router (drops its memoised flows) and the API, like a policy activation.
        self.registry_sync.on_change(self.router.replace_registry)
        self.registry_sync.on_change(self._registry_changed)

    def _registry_changed(self, registry: Registry) -> None:
        self.registry = self.runtime.registry = registry

    def start(self) -> None:
        self.runtime.control.open(wait=False)
        for pool in self.runtime.regions.values():
            pool.open(wait=False)
        self.policy_runtime.start()
        if self.volumes is not None:
            try:  # every replica's records before the first message (the store is migrated: it is up)
                self.volumes.sync()
            except Exception as exc:
                log.warning("measured volumes: first sync failed, retrying in the background: %s", exc)
            self.volumes.start()
            publish(lambda: self.volumes.routes(self.registry.sites, self.registry.regions,  # type: ignore[union-attr]
                                                self.registry.candidate_regions))
        self.consumer.start()
        self.maintenance.start()
        self.registry_sync.start()
        log.info("ingest started: regions %s, policy %s (%s)", sorted(self.settings.region_dsns),
                 self.settings.policy_engine, self.policy.revision)

    def stop(self) -> None:
        self.registry_sync.stop()
        self.maintenance.stop()
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
