"""Recorded decisions for what-if tests, written the way the ingest writes them: the policy input is the
Flow's JSON, the outcome follows the shipped policy's decision, one row per message x category x region."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from devstack import PostgresServer
from ingest.store.migrate import migrate
from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, EmbeddedPolicyEngine, Flow, PolicyEngine

MESSAGES = 40  # per stream, over the last 20 hours (seeded_control)
OLD = 7  # per stream, two days ago: outside a 24 h window (seeded_control)


@dataclass(frozen=True)
class Stream:
    """A device's message-categories: one flow per candidate region (home first, then analytics)."""

    device_id: str
    site_id: str
    origin: str
    category: str
    regions: tuple[tuple[str, str], ...]  # (region, country)
    extra: dict[str, Any]
    readings: int = 5


DE_PERSONAL = Stream(
    "de-munich-cnc-01",
    "de-munich",
    "DE",
    "personal",
    (("eu-central", "DE"), ("us-east", "US")),
    {"recipient": {"dpf_certified": True}},
)
DE_MACHINE = Stream("de-munich-cnc-01", "de-munich", "DE", "machine", (("eu-central", "DE"), ("us-east", "US")), {})
CN_MACHINE = Stream(
    "cn-shenzhen-cnc-01",
    "cn-shenzhen",
    "CN",
    "machine",
    (("cn-north", "CN"), ("us-east", "US")),
    {"entity": {"ciio": True}},
)
VN_PERSONAL = Stream(
    "vn-hanoi-press-01",
    "vn-hanoi",
    "VN",
    "personal",
    (("ap-southeast", "SG"), ("us-east", "US")),
    {"safeguards_by_country": {"SG": ["VN_TIA_FILED"]}},
)
STREAMS = (DE_PERSONAL, DE_MACHINE, CN_MACHINE, VN_PERSONAL)


def flow_for(stream: Stream, country: str) -> Flow:
    extra = dict(stream.extra)
    safeguards = extra.pop("safeguards_by_country", {}).get(country, [])
    return Flow.model_validate(
        {
            "origin": stream.origin,
            "destination": country,
            "category": stream.category,
            "safeguards": safeguards,
            **extra,
        }
    )


def outcome(allow: bool, transforms: dict[str, str]) -> str:
    return "denied" if not allow else ("transformed" if transforms else "stored")


def seed(
    dsn: str,
    engine: PolicyEngine,
    *,
    messages: int,
    until: datetime,
    spread: timedelta,
    streams: tuple[Stream, ...] = STREAMS,
    first_seq: int = 1,
) -> int:
    """``messages`` messages per stream, decided by ``engine``, spread over [until - spread, until)."""
    cached = engine if isinstance(engine, CachedPolicyEngine) else CachedPolicyEngine(engine)
    rows = []
    for i in range(messages):
        at = until - spread + spread * (i + 0.5) / messages
        for stream in streams:
            seq = first_seq + i
            for region, country in stream.regions:
                flow = flow_for(stream, country)
                d = cached.decide(flow)
                rows.append(
                    (
                        uuid.uuid4(),
                        at,
                        stream.device_id,
                        seq,
                        stream.site_id,
                        stream.origin,
                        stream.category,
                        region,
                        country,
                        outcome(d.allow, d.transforms),
                        d.allow,
                        d.localization,
                        Jsonb(d.requires),
                        Jsonb(d.transforms),
                        Jsonb(d.reasons),
                        d.policy_revision,
                        stream.readings,
                        Jsonb(flow.model_dump(mode="json")),
                    )
                )
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO decisions (decision_id, decided_at, device_id, seq, site_id, origin_country, category,"
            " region, destination_country, outcome, allow, localization, requires, transforms, reasons,"
            " policy_revision, readings, input) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s)",
            rows,
        )
    return len(rows)


def draft_without_dpf_and_stricter_vietnam(policy_dir: Path) -> Path:
    """A compliance officer's draft: the EU-US DPF is gone (say, annulled on appeal in C-703/25 P) and
    Vietnam demands state approval as well as the filed TIA for personal data. Data edits only."""
    adequacy = policy_dir / "data" / "adequacy.json"
    data = json.loads(adequacy.read_text())
    data["EU_ADEQ"]["entries"] = [
        e for e in data["EU_ADEQ"]["entries"] if not (isinstance(e, dict) and e.get("c") == "US")
    ]
    adequacy.write_text(json.dumps(data, indent=2))
    regimes = policy_dir / "data" / "regimes.json"
    data = json.loads(regimes.read_text())
    data["VN"]["categories"]["personal"]["alternatives"] = [["VN_TIA_FILED", "STATE_APPROVAL"]]
    regimes.write_text(json.dumps(data, indent=2))
    return policy_dir


def seeded_control(pg_server: PostgresServer, name: str, now: datetime) -> str:
    """A migrated control store ``name`` whose decision log holds, decided by the shipped policy, ``MESSAGES``
    messages per stream over the 20 hours before ``now`` and ``OLD`` per stream two days before ``now``."""
    dsn = pg_server.create_database(name)
    migrate(dsn, "control", store="control")
    shipped = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    seed(dsn, shipped, messages=MESSAGES, until=now, spread=timedelta(hours=20))
    seed(dsn, shipped, messages=OLD, until=now - timedelta(hours=48), spread=timedelta(hours=1), first_seq=10_000)
    return dsn


def copy_draft(target: Path) -> Path:
    """The shipped policy's rego/ and data/ copied to ``target`` and edited into
    :func:`draft_without_dpf_and_stricter_vietnam`."""
    import shutil

    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, target / sub)
    return draft_without_dpf_and_stricter_vietnam(target)
