"""One message must never stop the ingest (docs/message-isolation.md).

Each poison message an adversarial run found is published on a real Mosquitto to the real ingest (real
policy, real PostgreSQL), each on a device of its own, followed by a valid canary batch of the same device.
Each case checks: the canary is stored, the poison is quarantined exactly once with its reason and nothing
of it is stored, and health stayed true (200 "ok" while the pipeline really works: the canaries prove it).
Before this, each of these stopped all ingestion (a dead flush thread with health still 200, or a flush
retried forever) and was redelivered after every restart.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from devstack import MosquittoServer, PostgresServer
from ingest.pipeline.router import Routed
from ingest.registry import Site
from ingest.service import IngestService
from policy import Decision, Flow
from policy.errors import PolicyEvaluationError
from tests.conftest import REGISTRY_FILE, fresh_databases
from tests.integration.ingest_harness import batch_payload, publisher, query, running_ingest, wait_until
from wire import Batch

GOOD = {
    "spindle_speed_rpm": 1200.0,
    "spindle_temp_c": 41.5,
    "vibration_mm_s": 1.2,
    "power_kw": 7.5,
    "tool_wear_pct": 12.0,
    "fault_code": 0,
    "operator_badge": "DE-B1001",
}
NOW = datetime.now(UTC).replace(microsecond=0)


def _raw(device: str, seq: object, values: str) -> bytes:
    """A batch written by hand (values as JSON text), for what json.dumps cannot produce."""
    ts = NOW.isoformat()
    return (
        f'{{"v": 1, "device_id": "{device}", "seq": {json.dumps(seq)}, "sent_at": "{ts}", '
        f'"readings": [{{"ts": "{ts}", "values": {values}}}]}}'
    ).encode()


@dataclass(frozen=True)
class Poison:
    name: str
    code: str  # the quarantine reason expected
    messages: Callable[[str], list[bytes]]  # device -> payloads (the poison, possibly preceded by valid batches)
    canary_seq: int
    detail: str = ""  # a fragment of the rejection's detail
    stored_seqs: frozenset[int] = frozenset()  # seqs of the device stored besides the canary
    canary: dict[str, Any] | None = None  # the canary's values (default GOOD)
    quarantined: int = 1  # poison messages among ``messages``


POISONS = [
    Poison("nested 1,000 deep", "malformed", lambda d: [b"[" * 1000 + b"]" * 1000], 1, "recursion limit"),
    Poison(
        "nested inside a batch",
        "malformed",
        lambda d: [batch_payload(d, 1, [GOOD])[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"],
        1,
        "recursion limit",
    ),
    Poison(
        "a 5,000-digit integer",
        "malformed",
        lambda d: [_raw(d, 1, '{"power_kw": ' + "9" * 5000 + "}")],
        1,
        "number out of range",
    ),
    Poison(
        "10^400 as a value", "malformed", lambda d: [_raw(d, 1, '{"power_kw": 1' + "0" * 400 + "}")], 1, "out of range"
    ),
    Poison("seq 2^63", "malformed", lambda d: [_raw(d, 2**63, '{"power_kw": 1.0}')], 1, "seq"),
    Poison("seq true", "malformed", lambda d: [_raw(d, True, '{"power_kw": 1.0}')], 1, "valid integer"),
    Poison("a NUL in a field name", "malformed", lambda d: [_raw(d, 1, '{"power\\u0000kw": 1.0}')], 1, "\\x00"),
    Poison("a NUL in a text value", "malformed", lambda d: [_raw(d, 1, '{"operator_badge": "B\\u0000-1"}')], 1, "NUL"),
    Poison(
        "1.5e308 twice in a minute",
        "malformed",
        lambda d: [_raw(d, 1, '{"power_kw": 1.5e308}'), _raw(d, 2, '{"power_kw": 1.5e308}')],
        3,
        "out of range",
        quarantined=2,
    ),
    Poison(
        "text in a machine field",
        "wrong_type",
        lambda d: [batch_payload(d, 1, [{**GOOD, "power_kw": "DEBADGE-SMUGGLED-Hans Meier"}])],
        2,
        "power_kw: text, declared number",
        frozenset({1}),
    ),
    Poison(
        "a re-used seq with other content",
        "seq_conflict",
        lambda d: [batch_payload(d, 1, [GOOD]), batch_payload(d, 1, [{**GOOD, "power_kw": 99.0}, GOOD])],
        2,
        "other content",
        frozenset({1}),
    ),
    Poison(
        "a wild seq jump",
        "seq_jump",
        lambda d: [batch_payload(d, 1, [GOOD]), batch_payload(d, 100_000, [GOOD])],
        2,
        "further ahead",
        frozenset({1}),
    ),
    Poison(
        "a store that refuses the rows (CHECK constraint)",
        "store_rejected",
        lambda d: [batch_payload(d, 1, [GOOD])],
        2,
        "violates check constraint",
    ),
    Poison(
        "a policy that cannot evaluate",
        "policy_error",
        lambda d: [batch_payload(d, 1, [GOOD])],
        2,
        "PolicyEvaluationError",
        canary={k: v for k, v in GOOD.items() if k != "operator_badge"},
    ),
    Poison("a bug in routing", "unprocessable", lambda d: [batch_payload(d, 1, [GOOD])], 2, "RuntimeError: injected"),
]


def _device(poison: Poison) -> str:
    return "px-" + "".join(c if c.isalnum() else "-" for c in poison.name.lower())[:40].strip("-")


@pytest.fixture(scope="module")
def poison_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo registry plus one device per poison."""
    raw = yaml.safe_load(REGISTRY_FILE.read_text())
    for poison in POISONS:
        raw["devices"][_device(poison)] = {"site": "de-munich", "profile": "cnc_mill"}
    path = tmp_path_factory.mktemp("registry") / "registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class _FaultyPolicy:
    """Fault injection (the real policy otherwise): raises PolicyEvaluationError for the personal data of the
    policy_error device's site, as an engine does for an input it cannot evaluate. Flows carry no device, so
    the site is recognised by the purpose the test gives it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def revision(self) -> str:
        return str(self.inner.revision)

    def decide(self, flow: Flow) -> Decision:
        if flow.purpose == "poison-policy" and flow.category != "machine":
            raise PolicyEvaluationError("eval_conflict_error: functions must not produce multiple outputs")
        return self.inner.decide(flow)  # type: ignore[no-any-return]  # inner: the real engine, untyped here

    def decide_many(self, flows: list[Flow]) -> list[Decision]:
        return [self.decide(f) for f in flows]


@pytest.fixture(scope="module")
def stack(poison_registry: Path) -> Iterator[dict[str, Any]]:
    pg = PostgresServer(settings={"fsync": "off"})
    pg.start()
    broker = MosquittoServer()
    broker.start()
    raw = yaml.safe_load(poison_registry.read_text())
    policy_device = _device(next(p for p in POISONS if p.code == "policy_error"))
    raw["sites"]["px-policy-site"] = {"country": "DE", "home_region": "eu-central", "purpose": "poison-policy"}
    raw["devices"][policy_device]["site"] = "px-policy-site"
    poison_registry.write_text(yaml.safe_dump(raw))
    from ingest.registry import load_registry

    control, regions = fresh_databases(pg, load_registry(poison_registry))
    store_device = _device(next(p for p in POISONS if p.code == "store_rejected"))
    with psycopg.connect(regions["us-east"], autocommit=True) as conn:  # us-east refuses this device's batch 1
        conn.execute(
            f"ALTER TABLE readings ADD CONSTRAINT poison_check CHECK (NOT (device_id = '{store_device}'"
            " AND seq = 1)) NOT VALID"
        )
    health: list[int] = []
    try:
        with running_ingest(broker, control, regions, registry_file=str(poison_registry)) as (service, api):
            service.router.policy = _FaultyPolicy(service.router.policy)  # type: ignore[assignment]  # a wrapper that fails some flows
            _inject_routing_bug(service, _device(next(p for p in POISONS if p.code == "unprocessable")))
            stop = threading.Event()

            def watch() -> None:
                while not stop.wait(0.2):
                    health.append(api.get("/api/v1/health").status_code)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            yield {
                "service": service,
                "api": api,
                "broker": broker,
                "control": control,
                "regions": regions,
                "health": health,
                "pub": publisher(broker, "poison-publisher"),
            }
            stop.set()
            watcher.join(10)
    finally:
        broker.cleanup()
        pg.cleanup()


def _inject_routing_bug(service: IngestService, device: str) -> None:
    """Fault injection: routing this device's batch 1 raises, as a bug in the router would."""
    router = service.router
    original = router._route_batch

    def buggy(topic: str, payload: bytes, batch: Batch, site_id: str, site: Site) -> Routed:
        if batch.device_id == device and batch.seq == 1:
            raise RuntimeError("injected routing bug")
        return original(topic, payload, batch, site_id, site)

    router._route_batch = buggy  # type: ignore[method-assign]  # a routing bug injected into this instance


@pytest.mark.integration
@pytest.mark.parametrize("poison", POISONS, ids=[p.name for p in POISONS])
def test_a_poison_message_is_quarantined_once_and_the_canary_after_it_is_stored(
    stack: dict[str, Any], poison: Poison
) -> None:
    service: IngestService = stack["service"]
    api: TestClient = stack["api"]
    pub: mqtt.Client = stack["pub"]
    control, regions = stack["control"], stack["regions"]
    device = _device(poison)
    topic = f"tele/v1/de-munich/{device}"
    if poison.code == "policy_error":
        topic = f"tele/v1/px-policy-site/{device}"
    for payload in poison.messages(device):
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
    pub.publish(topic, batch_payload(device, poison.canary_seq, [poison.canary or GOOD]), qos=1).wait_for_publish(5)

    home = regions["eu-central"]
    wait_until(
        lambda: (
            query(home, "SELECT count(*) FROM readings WHERE device_id = %s AND seq = %s", device, poison.canary_seq)[
                0
            ][0]
            > 0
        ),
        60,
        f"the canary after {poison.name} stored",
    )
    wait_until(lambda: service.stats.snapshot()["inflight"] == 0, 60, "everything acknowledged")

    rows = query(control, "SELECT code, detail, payload_kept FROM rejections WHERE topic = %s", topic)
    assert [r[0] for r in rows] == [poison.code] * poison.quarantined, rows
    assert poison.detail in rows[0][1]
    assert "\x00" not in rows[0][1]
    stored = {seq for (seq,) in query(home, "SELECT DISTINCT seq FROM readings WHERE device_id = %s", device)}
    if poison.code == "store_rejected":  # refused by us-east only: the home region stored it
        assert stored == {1, poison.canary_seq}
        assert query(regions["us-east"], "SELECT DISTINCT seq FROM readings WHERE device_id = %s", device) == [
            (poison.canary_seq,)
        ]
    else:
        assert stored == {poison.canary_seq, *poison.stored_seqs}
    if poison.code == "wrong_type":  # the other fields of the message are stored, not the smuggled text
        names = {n for (n,) in query(home, "SELECT name FROM readings WHERE device_id = %s AND seq = 1", device)}
        assert "power_kw" not in names and "spindle_speed_rpm" in names
        assert query(home, "SELECT count(*) FROM readings WHERE txt LIKE 'DEBADGE%%'") == [(0,)]
    if poison.code == "seq_jump":
        assert query(control, "SELECT last_seq FROM device_progress WHERE device_id = %s", device) == [(2,)]
        assert query(control, "SELECT count(*) FROM sequence_gaps WHERE device_id = %s", device) == [(0,)]
    wait_until(lambda: bool(stack["health"]), 30, "health sampled")
    assert set(stack["health"]) == {200}, "health stayed ok: the pipeline kept working"
    assert api.get("/api/v1/health").json()["status"] == "ok"


@pytest.mark.integration
def test_status_messages_cannot_spoof_another_gateway_or_freeze_a_status(stack: dict[str, Any]) -> None:
    """A gateway may publish only its own status (checked against its topic and the registry); a status dated
    in the future is refused, and a row already frozen in the future is replaced by the next genuine one."""
    service: IngestService = stack["service"]
    pub: mqtt.Client = stack["pub"]
    control = stack["control"]

    def status(gateway: str, **over: Any) -> bytes:
        body = {
            "v": 1,
            "gateway_id": gateway,
            "site_id": "de-munich",
            "state": "online",
            "at": datetime.now(UTC).isoformat(),
            "devices": ["de-munich-cnc-01"],
            **over,
        }
        return json.dumps(body).encode()

    with psycopg.connect(control) as conn:  # frozen before statuses were checked: dated in 9999
        conn.execute(
            "INSERT INTO gateway_status (gateway_id, site_id, state, at) VALUES"
            " ('gw-frozen', 'de-munich', 'offline', '9999-01-01T00:00:00Z')"
        )
    sent = [
        ("status/v1/de-munich/gw-attacker", status("gw-victim", state="offline")),  # names another gateway
        ("status/v1/de-munich/gw-attacker", status("gw-attacker", devices=["us-detroit-cnc-01"])),  # other site's
        ("status/v1/de-munich/gw-victim", status("gw-victim", at="9999-01-01T00:00:00+00:00", state="offline")),
        ("status/v1/de-munich/gw-poison", status("gw-poison", reason="lost\u0000")),  # a NUL in the reason
        ("status/v1/de-munich/gw-victim", status("gw-victim")),  # the genuine birth
        ("status/v1/de-munich/gw-frozen", status("gw-frozen")),
    ]
    for topic, payload in sent:
        pub.publish(topic, payload, qos=1, retain=topic.endswith("gw-poison")).wait_for_publish(5)
    wait_until(
        lambda: len(query(control, "SELECT 1 FROM rejections WHERE code = 'bad_status'")) >= 4,
        30,
        "the bad statuses quarantined",
    )
    wait_until(
        lambda: query(control, "SELECT state FROM gateway_status WHERE gateway_id = 'gw-frozen'") == [("online",)],
        30,
        "the frozen status replaced by a genuine one",
    )
    assert query(control, "SELECT state FROM gateway_status WHERE gateway_id = 'gw-victim'") == [("online",)]
    details = sorted(d for (d,) in query(control, "SELECT detail FROM rejections WHERE code = 'bad_status'"))
    assert len(details) == 4
    assert any("names gateway 'gw-victim'" in d for d in details)
    assert any("lists devices of other sites" in d for d in details)
    assert any("ahead of the ingest's clock" in d for d in details)
    assert any("NUL" in d for d in details)
    assert query(control, "SELECT count(*) FROM gateway_status WHERE gateway_id IN ('gw-attacker', 'gw-poison')") == [
        (0,)
    ]
    assert service.stats.snapshot()["rejections"].get("bad_status") == 4


@pytest.mark.integration
def test_a_retained_poison_status_is_quarantined_once_across_restarts(
    mqtt_broker: MosquittoServer, pg_server: PostgresServer, registry: Any
) -> None:
    control, regions = fresh_databases(pg_server, registry)
    pub = publisher(mqtt_broker, "retained-poison")
    bad = json.dumps(
        {
            "v": 1,
            "gateway_id": "gw-r",
            "site_id": "de-munich",
            "state": "offline",
            "at": datetime.now(UTC).isoformat(),
            "reason": "x\u0000",
        }
    ).encode()
    pub.publish("status/v1/de-munich/gw-r", bad, qos=1, retain=True).wait_for_publish(5)
    for _restart in range(2):  # the broker hands the retained status to every new subscription
        # the same client id: a restarted replica (another id would leave a session in the share group)
        with running_ingest(mqtt_broker, control, regions, mqtt_client_id="ingest-retained") as (service, _api):

            def quarantined(s: IngestService = service) -> bool:
                return bool(s.stats.snapshot()["rejections"].get("bad_status") == 1)

            def canary_stored(s: IngestService = service) -> bool:
                return bool(s.stats.snapshot()["messages"]["stored"] == 1)

            wait_until(quarantined, 30, "the retained poison quarantined")
            pub.publish(
                "tele/v1/de-munich/de-munich-cnc-01", batch_payload("de-munich-cnc-01", 1 + _restart, [GOOD]), qos=1
            ).wait_for_publish(5)
            wait_until(canary_stored, 30, "the canary stored")
            assert service.stats.healthy()
    assert query(control, "SELECT count(*) FROM rejections WHERE code = 'bad_status'") == [(1,)]
    pub.loop_stop()


@pytest.mark.integration
def test_a_dead_flush_thread_makes_health_fail_and_calls_on_fatal(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]]
) -> None:
    """A bug that escapes the flush loop (injected here) must not leave a live process that stores nothing
    while health says ok."""
    control, regions = databases
    fatal: list[str] = []
    with running_ingest(mqtt_broker, control, regions) as (service, api):
        service.stats.watchdog._on_fatal = fatal.append  # what `ingest serve` sets: exit non-zero

        def broken(*_a: Any, **_k: Any) -> None:
            raise RuntimeError("injected bug in the flush loop")

        service.consumer._process = broken  # type: ignore[method-assign]  # a fault injected into this instance
        pub = publisher(mqtt_broker, "dead-thread")
        pub.publish(
            "tele/v1/de-munich/de-munich-cnc-01", batch_payload("de-munich-cnc-01", 1, [GOOD]), qos=1
        ).wait_for_publish(5)
        wait_until(lambda: bool(fatal), 30, "on_fatal called")
        assert "thread ingest-flush died: RuntimeError: injected bug in the flush loop" in fatal[0]
        assert not service.stats.healthy()
        health = api.get("/api/v1/health")
        assert health.status_code == 503
        assert "ingest-flush died" in health.json()["checks"]["pipeline"]["detail"]
        pub.loop_stop()


@pytest.mark.integration
def test_a_stalled_pipeline_is_reported(mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]]) -> None:
    """A write that hangs (a lock that never comes) with messages waiting: health names the stage."""
    control, regions = databases
    with running_ingest(mqtt_broker, control, regions, watchdog_stall_s=2.0) as (service, api):
        with psycopg.connect(regions["eu-central"]) as locker:
            locker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")  # held until this block ends
            pub = publisher(mqtt_broker, "stall")
            pub.publish(
                "tele/v1/de-munich/de-munich-cnc-01", batch_payload("de-munich-cnc-01", 1, [GOOD]), qos=1
            ).wait_for_publish(5)
            wait_until(lambda: not service.stats.healthy(), 30, "stall reported")
            detail = api.get("/api/v1/health").json()["checks"]["pipeline"]["detail"]
            assert "pipeline stalled" in detail and "messages waiting" in detail
        wait_until(
            lambda: service.stats.healthy() and service.stats.snapshot()["inflight"] == 0,
            30,
            "healthy again once the lock is gone",
        )
        pub.loop_stop()


_BROKEN_SERVE = """
import sys
from ingest.pipeline import consumer

def broken(*_a, **_k):
    raise RuntimeError("injected bug in the flush loop")

consumer.Consumer._process = broken  # fault injection: the flush thread dies at its first batch
from ingest.cli import main
sys.argv = ["ingest", "serve"]
main()
"""


@pytest.mark.integration
def test_ingest_serve_exits_non_zero_when_a_worker_thread_dies(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """So that its supervisor (systemd, Docker's restart policy) restarts it, instead of a process that stays up
    and stores nothing."""
    import os
    import subprocess
    import sys

    from devstack.ports import free_port
    from tests.integration.ingest_harness import REGISTRY

    control, regions = databases
    env = {
        **os.environ,
        "INGEST_MQTT_PORT": str(mqtt_broker.port),
        "INGEST_MQTT_CLIENT_ID": "ingest-dies",
        "INGEST_CONTROL_DSN": control,
        "INGEST_REGION_DSNS": json.dumps(regions),
        "INGEST_REGISTRY_FILE": REGISTRY,
        "INGEST_API_PORT": str(free_port()),
        "INGEST_WORKERS": "1",
    }  # the fault is injected into this process (tests/ingest/test_workers.py: several)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _BROKEN_SERVE], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "ingest started" in log.read_text() or proc.poll() is not None, 60, "ingest started")
        pub = publisher(mqtt_broker, "dies-publisher")
        pub.publish(
            "tele/v1/de-munich/de-munich-cnc-01", batch_payload("de-munich-cnc-01", 1, [GOOD]), qos=1
        ).wait_for_publish(5)
        assert proc.wait(90) == 70, log.read_text()[-3000:]
        text = log.read_text()
        assert "thread ingest-flush died: RuntimeError: injected bug in the flush loop" in text
        assert "exiting with status 70" in text
        pub.loop_stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
