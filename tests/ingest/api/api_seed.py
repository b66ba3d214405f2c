"""Known rows for the API tests (module constants, so tests assert exact numbers) and the helpers that
seed the stores and build a ``Runtime`` around them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ingest.api import ApiSettings
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store import rollups, timescale

REPO_ROOT = Path(__file__).resolve().parents[3]
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
REVISION = "sha256:test-revision-1"
# The seeded readings are older than the default 90-day retention: on TimescaleDB its policy would drop them
# as soon as it is added. The stores keep everything (no retention policy), as the runtime's settings say.
STORE_RETENTION_DAYS = 0
OLD_REVISION = "sha256:test-revision-0"
T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
BADGE_TOKEN = "ps_7f3a9c"

# (device, region, seq, idx, name, seconds after T0, value) -- value: float -> num, str -> txt
READINGS: list[tuple[str, str, int, int, str, float, float | str]] = [
    ("de-munich-cnc-01", "eu-central", 1, 0, "spindle_temp_c", 10, 40.0),
    ("de-munich-cnc-01", "eu-central", 1, 1, "spindle_temp_c", 40, 42.0),
    ("de-munich-cnc-01", "eu-central", 1, 2, "spindle_temp_c", 65, 50.0),
    ("de-munich-cnc-01", "eu-central", 2, 0, "spindle_temp_c", 299, 44.0),
    ("de-munich-cnc-01", "eu-central", 2, 1, "spindle_temp_c", 300, 46.0),
    ("de-munich-cnc-01", "eu-central", 2, 1, "spindle_speed_rpm", 300, 1200.0),
    ("de-munich-cnc-01", "eu-central", 1, 0, "operator_badge", 10, "ps_0000aa"),
    ("de-munich-cnc-01", "eu-central", 2, 1, "operator_badge", 300, BADGE_TOKEN),
    ("de-munich-cnc-01", "us-east", 2, 1, "spindle_speed_rpm", 300, 1200.0),
    ("cn-shenzhen-cnc-01", "cn-north", 7, 0, "spindle_speed_rpm", 0, 900.0),
    ("sg-jurong-cnc-01", "ap-southeast", 3, 0, "power_kw", 0, 7.5),
]
DECISION_IDS = {
    key: uuid.uuid5(uuid.NAMESPACE_URL, key)
    for key in (
        "de1-machine-eu",
        "de1-machine-us",
        "de1-personal-eu",
        "de1-personal-us",
        "cn7-machine-cn",
        "cn7-machine-us",
        "de2-machine-eu",
        "fr1-machine-eu-old",
    )
}


@dataclass(frozen=True)
class Decision:
    key: str
    age_s: int
    device_id: str
    seq: int
    site_id: str
    origin: str
    category: str
    region: str
    destination: str
    outcome: str
    readings: int
    reasons: list[str]
    requires: list[str] = field(default_factory=list)
    transforms: dict[str, str] = field(default_factory=dict)
    revision: str = REVISION


DECISIONS = [
    Decision(
        "de1-machine-eu",
        50,
        "de-munich-cnc-01",
        1,
        "de-munich",
        "DE",
        "machine",
        "eu-central",
        "DE",
        "stored",
        5,
        ["domestic flow"],
    ),
    Decision(
        "de1-machine-us",
        45,
        "de-munich-cnc-01",
        1,
        "de-munich",
        "DE",
        "machine",
        "us-east",
        "US",
        "stored",
        5,
        ["machine data flows freely"],
    ),
    Decision(
        "de1-personal-eu",
        40,
        "de-munich-cnc-01",
        1,
        "de-munich",
        "DE",
        "personal",
        "eu-central",
        "DE",
        "transformed",
        1,
        ["domestic flow; pseudonymized by site rule"],
        transforms={"operator_badge": "pseudonymize"},
    ),
    Decision(
        "de1-personal-us",
        35,
        "de-munich-cnc-01",
        1,
        "de-munich",
        "DE",
        "personal",
        "us-east",
        "US",
        "denied",
        1,
        ["GDPR Art 46: no safeguard in force for US recipient"],
        requires=["SCC", "BCR"],
    ),
    Decision(
        "cn7-machine-cn",
        30,
        "cn-shenzhen-cnc-01",
        7,
        "cn-shenzhen",
        "CN",
        "machine",
        "cn-north",
        "CN",
        "stored",
        3,
        ["domestic flow"],
    ),
    Decision(
        "cn7-machine-us",
        25,
        "cn-shenzhen-cnc-01",
        7,
        "cn-shenzhen",
        "CN",
        "machine",
        "us-east",
        "US",
        "denied",
        3,
        ["CN CIIO: localization of data of critical infrastructure"],
    ),
    Decision(
        "de2-machine-eu",
        20,
        "de-munich-cnc-01",
        2,
        "de-munich",
        "DE",
        "machine",
        "eu-central",
        "DE",
        "stored",
        4,
        ["domestic flow"],
    ),
    Decision(
        "fr1-machine-eu-old",
        3600,
        "fr-lyon-cnc-01",
        1,
        "fr-lyon",
        "FR",
        "machine",
        "eu-central",
        "DE",
        "stored",
        10,
        ["EU internal flow"],
        revision=OLD_REVISION,
    ),
]
# (topic, device_id, seq, code, detail, payload_bytes, age_s)
REJECTIONS = [
    ("tele/v1/de-munich/gw-1/de-munich-cnc-01", "de-munich-cnc-01", 9, "malformed", "not JSON", 17, 60),
    ("tele/v1/de-munich/gw-1/de-munich-cnc-01", "de-munich-cnc-01", 10, "malformed", "readings: too short", 40, 50),
    ("tele/v1/xx/gw-9/xx-ghost-01", None, None, "unknown_device", "device 'xx-ghost-01' not in registry", 99, 40),
]
# (gateway, site, state, age_s, devices, reason)
GATEWAYS = [
    ("gw-munich-1", "de-munich", "online", 30, ["de-munich-cnc-01", "de-munich-press-01"], None),
    ("gw-munich-old", "de-munich", "offline", 86400, ["de-munich-cnc-01"], "decommissioned"),
    ("gw-shenzhen-1", "cn-shenzhen", "offline", 120, ["cn-shenzhen-cnc-01"], "connection lost (will)"),
]
LAST_SEEN = datetime(2026, 1, 5, 10, 5, 1, tzinfo=UTC)
# device -> (last_seq, batches, readings, last_seen_at)
PROGRESS = {
    "de-munich-cnc-01": (2, 2, 9, LAST_SEEN),
    "cn-shenzhen-cnc-01": (7, 1, 3, LAST_SEEN - timedelta(minutes=5)),
}


class FakePolicy:
    """Stands in for the policy engine: the API only reads its revision."""

    def __init__(self, revision: str) -> None:
        self.revision = revision


class FakePipeline:
    """A stand-in for ingest.pipeline.stats.PipelineStats (the real pipeline is tested in
    tests/ingest/pipeline): the API only calls snapshot() and healthy()."""

    def __init__(self) -> None:
        self.is_healthy = True
        self.counters: dict[str, Any] = self.default_snapshot()

    @staticmethod
    def default_snapshot() -> dict[str, Any]:
        return {
            "messages": {"received": 12, "stored": 10, "rejected": 2},
            "rejections": {"malformed": 2},
            "rows_by_region": {"eu-central": 8, "us-east": 1, "cn-north": 1},
            "decisions": {"stored": 4, "transformed": 1, "denied": 2},
            "inflight": 0,
            "last_commit_at": "2026-01-05T10:05:02+00:00",
            "store_errors": 0,
            "last_error": None,
            "broker_connected": True,
            "healthy": True,
            "policy_revision": REVISION,
        }

    def snapshot(self) -> dict[str, Any]:
        return {**self.counters, "healthy": self.is_healthy}

    def healthy(self) -> bool:
        return self.is_healthy


def region_db_name(region: str) -> str:
    return f"api_{region.replace('-', '_')}"


def seed_region(dsn: str, region: str, registry: Registry) -> None:
    rows = [r for r in READINGS if r[1] == region]
    with psycopg.connect(dsn) as conn:
        for device, _region, seq, idx, name, offset_s, value in rows:
            site_id = registry.devices[device].site
            site = registry.sites[site_id]
            category = registry.profile_of(device).fields[name].category
            conn.execute(
                "INSERT INTO readings (device_id, seq, idx, name, ts, site_id, origin_country, category,"
                " num, txt, transform, decision_id, policy_revision)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    device,
                    seq,
                    idx,
                    name,
                    T0 + timedelta(seconds=offset_s),
                    site_id,
                    site.country,
                    category,
                    value if isinstance(value, float) else None,
                    value if isinstance(value, str) else None,
                    "pseudonymized" if isinstance(value, str) else None,
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{device}/{seq}/{category}/{region}"),
                    REVISION,
                ),
            )
        # the rows above bypass RegionWriter: rebuild the rollup tables (plain) or materialize the aggregates
        if rollups.maintained_at_write(conn):
            rollups.rebuild(conn)
            return
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in timescale.refresh_all_statements():
            statement.execute(conn)


def seed_control(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for d in DECISIONS:
            conn.execute(
                "INSERT INTO decisions (decision_id, decided_at, device_id, seq, site_id, origin_country,"
                " category, region, destination_country, outcome, allow, localization, requires, transforms,"
                " reasons, policy_revision, readings, input)"
                " VALUES (%s, now() - make_interval(secs => %s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s, %s, %s, %s)",
                (
                    DECISION_IDS[d.key],
                    d.age_s,
                    d.device_id,
                    d.seq,
                    d.site_id,
                    d.origin,
                    d.category,
                    d.region,
                    d.destination,
                    d.outcome,
                    d.outcome != "denied",
                    "none",
                    Jsonb(d.requires),
                    Jsonb(d.transforms),
                    Jsonb(d.reasons),
                    d.revision,
                    d.readings,
                    Jsonb({"origin": d.origin, "destination": d.destination, "category": d.category}),
                ),
            )
        for topic, device, seq, code, detail, size, age_s in REJECTIONS:
            conn.execute(
                "INSERT INTO rejections (received_at, topic, device_id, seq, code, detail, payload_bytes)"
                " VALUES (now() - make_interval(secs => %s), %s, %s, %s, %s, %s, %s)",
                (age_s, topic, device, seq, code, detail, size),
            )
        for gateway, site, state, age_s, devices, reason in GATEWAYS:
            conn.execute(
                "INSERT INTO gateway_status (gateway_id, site_id, state, at, devices, reason)"
                " VALUES (%s, %s, %s, now() - make_interval(secs => %s), %s, %s)",
                (gateway, site, state, age_s, Jsonb(devices), reason),
            )
        for device, (last_seq, batches, readings, seen) in PROGRESS.items():
            conn.execute(
                "INSERT INTO device_progress (device_id, last_seq, batches, readings, last_seen_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (device, last_seq, batches, readings, seen),
            )


def open_pool(dsn: str, name: str) -> ConnectionPool:
    pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=4,
        open=False,
        name=name,
        kwargs={"connect_timeout": 2},
    )
    pool.open(wait=True, timeout=10)
    return pool


def build_runtime(control: str, regions: dict[str, str], registry: Registry, pipeline: FakePipeline | None) -> Runtime:
    return Runtime(
        settings=load_settings(
            control_dsn=control, region_dsns=regions, registry_file=REGISTRY_FILE, retention_days=STORE_RETENTION_DAYS
        ),
        registry=registry,
        control=open_pool(control, "control"),
        regions={region: open_pool(dsn, region) for region, dsn in regions.items()},
        policy=FakePolicy(REVISION),
        pipeline=pipeline,
    )


def close_runtime(runtime: Runtime) -> None:
    runtime.control.close()
    for pool in runtime.regions.values():
        pool.close()


FAST = ApiSettings(
    pool_timeout_s=1.0,
    health_timeout_s=1.0,
    statement_timeout_ms=3000,
    rate_limit="100000/minute",
    rate_limit_unauthenticated="100000/minute",
)
