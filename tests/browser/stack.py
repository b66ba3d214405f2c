"""A real running stack for the browser tests: Mosquitto, PostgreSQL (control + one database per region),
one ingest replica as a subprocess (`python -m ingest serve`, its API on a free port), and known traffic:

- real edge agents (simulated machines) of three sites publish a few batches each, then shut down
  (their gateways report offline);
- ``cn-shenzhen-cnc-01`` gets six hours of backfilled minute readings (so its charts have many points),
  with batches 19-20 never sent (an open sequence gap), and its gateway reports online;
- one malformed payload from ``de-munich-cnc-01`` (quarantined, payload held in eu-central);
- one batch of ``fr-lyon-comp-01`` whose operator badge was pseudonymized at the edge (a long hex pseudonym,
  for the tables' long values);
- one batch of ``fr-lyon-cnc-01`` with a press field (``barrel_temp_c``: undeclared for a cnc mill; quarantined,
  held in eu-central, releasable once the device is registered as a press);
- a draft policy without the EU-US DPF and with stricter Vietnamese rules is uploaded (for what-if).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from devstack import MosquittoServer
from edge_agent.mqtt import status_payload
from ingest.registry import Registry
from policy import DEFAULT_POLICY_DIR
from policy.bundle import bundle_files, targz
from tests.integration.ingest_harness import Replica, publisher, query, wait_until
from tests.integration.load import AgentLoad
from tests.policy.decision_seed import draft_without_dpf_and_stricter_vietnam

AGENT_SITES = ["de-munich", "us-detroit", "vn-hanoi"]
AGENT_BATCHES = 6
BACKFILL_DEVICE = "cn-shenzhen-cnc-01"
BACKFILL_SITE = "cn-shenzhen"
BACKFILL_BATCHES = 26  # 15 one-minute readings each: 6.5 hours
BACKFILL_READINGS = 15
MISSING_SEQS = (19, 20)  # never sent: one open gap
MALFORMED = b'{"v": 1, "device_id": "de-munich-cnc-01", "seq": '
REFLASHED_DEVICE = "fr-lyon-cnc-01"  # sends press fields: undeclared for its registered profile (cnc_mill)
PSEUDONYM_DEVICE = "fr-lyon-comp-01"
PSEUDONYM = "ps_" + "9f2c4e1a7b3d5f60" * 2  # as edge_agent.privacy writes them: a prefix and 32 hex digits


@dataclass
class LiveStack:
    broker: MosquittoServer
    control: str
    regions: dict[str, str]
    registry: Registry
    replica: Replica
    draft_revision: str = ""
    malformed_id: str = ""
    undeclared_id: str = ""
    backfill_batches: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.replica.url("")

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            self.replica.url(f"/api/v1{path}"), params=params, headers=self.replica.headers, timeout=10
        )
        response.raise_for_status()
        return response.json()

    @property
    def token(self) -> str:
        """The replica's admin token (every role and region)."""
        return self.replica.headers["Authorization"].removeprefix("Bearer ")

    def signed_in(self, url: str) -> str:
        """``url`` with the token in its fragment: the page keeps it in sessionStorage and drops the fragment."""
        return f"{url}#token={self.token}"

    def sql(self, dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        return query(dsn, statement, *params)


def _cnc_values(minute: int) -> dict[str, Any]:
    wave = math.sin(minute / 17)
    return {
        "spindle_speed_rpm": round(1200 + 300 * wave, 1),
        "spindle_temp_c": round(45 + 6 * math.sin(minute / 40), 2),
        "vibration_mm_s": round(1.5 + 0.4 * math.cos(minute / 9), 3),
        "power_kw": round(7.5 + 2 * wave, 2),
        "tool_wear_pct": round(min(100.0, minute / 4), 2),
        "fault_code": 0 if minute % 97 else 12,
        "operator_badge": f"CN-B10{minute // 120}",
    }


def _backfill(client: mqtt.Client, now: datetime) -> list[int]:
    """Six and a half hours of minute readings of the backfill device, ending a minute ago."""
    total = BACKFILL_BATCHES * BACKFILL_READINGS
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=total)
    topic = f"tele/v1/{BACKFILL_SITE}/{BACKFILL_DEVICE}"
    sent = []
    for seq in range(1, BACKFILL_BATCHES + 1):
        if seq in MISSING_SEQS:
            continue
        readings = []
        for i in range(BACKFILL_READINGS):
            minute = (seq - 1) * BACKFILL_READINGS + i
            ts = start + timedelta(minutes=minute, seconds=20)
            readings.append({"ts": ts.isoformat(), "values": _cnc_values(minute)})
        payload = json.dumps(
            {"v": 1, "device_id": BACKFILL_DEVICE, "seq": seq, "sent_at": now.isoformat(), "readings": readings}
        ).encode()
        client.publish(topic, payload, qos=1).wait_for_publish(5)
        sent.append(seq)
    return sent


def start_stack(
    broker: MosquittoServer, control: str, regions: dict[str, str], registry: Registry, tmp: Path
) -> LiveStack:
    replica = Replica("ingest-browser", broker, control, regions, tmp).start()
    stack = LiveStack(broker=broker, control=control, regions=regions, registry=registry, replica=replica)
    try:
        _publish_traffic(stack, tmp)
    except BaseException:
        replica.stop()
        raise
    return stack


def _publish_traffic(stack: LiveStack, tmp: Path) -> None:
    registry = stack.registry
    load = AgentLoad(stack.broker, registry, AGENT_SITES, tmp / "agents", batches=AGENT_BATCHES).start()
    client = publisher(stack.broker, client_id="browser-test-publisher")
    try:
        now = datetime.now(UTC)
        stack.backfill_batches = _backfill(client, now)
        client.publish("tele/v1/de-munich/de-munich-cnc-01", MALFORMED, qos=1).wait_for_publish(5)
        values = {"barrel_temp_c": 221.5, "power_kw": 18.0, "fault_code": 0}
        reflashed = json.dumps(
            {
                "v": 1,
                "device_id": REFLASHED_DEVICE,
                "seq": 1,
                "sent_at": now.isoformat(),
                "readings": [{"ts": now.isoformat(), "values": values}],
            }
        ).encode()
        client.publish(f"tele/v1/fr-lyon/{REFLASHED_DEVICE}", reflashed, qos=1).wait_for_publish(5)
        compressor = {
            "discharge_pressure_bar": 7.2,
            "motor_temp_c": 61.0,
            "vibration_mm_s": 1.1,
            "power_kw": 11.0,
            "fault_code": 0,
            "operator_badge": PSEUDONYM,
        }
        pseudonymized = json.dumps(
            {
                "v": 1,
                "device_id": PSEUDONYM_DEVICE,
                "seq": 1,
                "sent_at": now.isoformat(),
                "key_id": "k1",
                "edge_transforms": {"operator_badge": "pseudonymized"},
                "readings": [{"ts": now.isoformat(), "values": compressor}],
            }
        ).encode()
        client.publish(f"tele/v1/fr-lyon/{PSEUDONYM_DEVICE}", pseudonymized, qos=1).wait_for_publish(5)
        devices = sorted(d for d, dev in registry.devices.items() if dev.site == BACKFILL_SITE)
        gateway = f"{BACKFILL_SITE}-gw-01"
        client.publish(
            f"status/v1/{BACKFILL_SITE}/{gateway}",
            status_payload(gateway, BACKFILL_SITE, "online", devices, None),
            qos=1,
            retain=True,
        ).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    acked = load.join(120)
    agent_batches = AGENT_BATCHES * len(acked)
    expected = agent_batches + len(stack.backfill_batches) + 3  # + the malformed, reflashed and pseudonymized ones

    def settled() -> bool:
        stats = stack.replica.stats()
        return bool(stats["messages"]["received"] >= expected and stats["inflight"] == 0)

    wait_until(settled, 60, f"{expected} messages received and committed")
    # The missing batches become a gap once the batch after them is INGEST_SEQ_GAP_GRACE_S old.
    wait_until(lambda: stack.api("/gaps")["open"] >= 1, 20, "the backfill device's gap opened")
    # Three gateways went offline at shutdown, the backfill site's gateway is online.
    wait_until(
        lambda: _gateway_states(stack) == {"offline": len(AGENT_SITES), "online": 1},
        20,
        "gateway status of the four sites recorded",
    )
    items = stack.api("/quarantine", code="malformed")["items"]
    assert len(items) == 1, items
    stack.malformed_id = items[0]["quarantine_id"]
    undeclared = stack.api("/quarantine", code="undeclared_field")["items"]
    assert len(undeclared) == 1 and undeclared[0]["state"] == "held", undeclared
    stack.undeclared_id = undeclared[0]["quarantine_id"]
    stack.draft_revision = _upload_draft(stack, tmp)


def _gateway_states(stack: LiveStack) -> dict[str, int]:
    return dict(stack.sql(stack.control, "SELECT state, count(*) FROM gateway_status GROUP BY state"))


def _upload_draft(stack: LiveStack, tmp: Path) -> str:
    draft = tmp / "draft"
    for sub in ("rego", "data"):
        shutil.copytree(DEFAULT_POLICY_DIR / sub, draft / sub)
    draft_without_dpf_and_stricter_vietnam(draft)
    body = targz(bundle_files(draft, with_tests=True)[1])
    response = httpx.post(
        stack.replica.url("/api/v1/policy/drafts"),
        content=body,
        timeout=60,
        headers={**stack.replica.headers, "Content-Type": "application/gzip"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["loads"], response.text
    return str(response.json()["revision"])
