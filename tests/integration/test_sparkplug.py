"""Sparkplug B from a third-party edge node (Eclipse Tahu's JavaScript client, run with Node.js): births, data with
aliases, a personal metric, a forced seq gap, an ingest kill -9, the node's death (Will) and reconnection with a
new bdSeq; and the bad input a Sparkplug node can send. One stack for the module: Mosquitto with the credentials
and ACLs `python -m broker credentials` generates from the registry (as a cell's broker: each edge node logs in
as <group>.<edge node>), PostgreSQL, one ingest replica as a subprocess (killable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.credentials import DYNSEC_FILE, generate_for_registry, read_secret
from broker.identities import IdentitiesSpec
from devstack import MosquittoServer, PostgresServer
from devstack.mosquitto import BrokerAuth
from devstack.sparkplug import TahuEdgeNode, merged_registry
from ingest.registry import Registry, load_registry
from tests.conftest import REGISTRY_FILE, fresh_databases
from tests.integration.ingest_harness import Replica, query, wait_until
from wire.sparkplug import sparkplug_b_pb2 as pb

PRESS = "de-munich-spb-press-01"
NODE = "spb:munich/tahu-01"


@dataclass
class Stack:
    broker: MosquittoServer
    control: str
    regions: dict[str, str]
    registry: Registry
    replica: Replica
    tmp: Path
    creds: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.broker.port}"

    def secret(self, identity: str) -> str:
        return read_secret(self.creds / "identities" / identity / "password")

    def node(self, edge_node: str, devices: list[str], bd_seq: int = 0) -> TahuEdgeNode:
        user = f"munich.{edge_node}"
        node = TahuEdgeNode(
            self.url,
            "munich",
            edge_node,
            devices,
            bd_seq=bd_seq,
            log=self.tmp / f"{edge_node}.log",
            username=user,
            password=self.secret(user),
        )
        node.wait_for(lambda e: e["event"] == "births")
        return node

    def stats(self) -> dict[str, Any]:
        return self.replica.stats()


@pytest.fixture(scope="module")
def stack(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("sparkplug")
    registry_file = merged_registry(REGISTRY_FILE, tmp / "registry.yaml")
    registry = load_registry(registry_file)
    creds = tmp / "credentials"
    generate_for_registry(
        registry, IdentitiesSpec.model_validate({"ingest": ["spb-ingest", "spb-ingest-2"], "gateways": {}}), creds
    )
    # Sparkplug edge nodes publish data at QoS 0 (as the specification prescribes); broker/local.conf, like the
    # production broker, delivers it to the ingest's QoS 1 subscription at QoS 1 (upgrade_outgoing_qos), so an
    # ingest crash does not lose it (docs/sparkplug.md).
    broker = MosquittoServer(auth=BrokerAuth(creds / DYNSEC_FILE))
    broker.start()
    control, regions = fresh_databases(pg_server, registry)
    secret = read_secret(creds / "identities" / "spb-ingest" / "password")
    replica = Replica(
        "spb-ingest",
        broker,
        control,
        regions,
        tmp,
        INGEST_REGISTRY_FILE=str(registry_file),
        INGEST_SPARKPLUG_REBIRTH_INTERVAL_S="30",
        INGEST_MQTT_USERNAME="spb-ingest",
        INGEST_MQTT_PASSWORD=secret,
    ).start()
    try:
        yield Stack(broker, control, regions, registry, replica, tmp, creds)
    finally:
        replica.kill()
        broker.cleanup()


def api_nodes(stack: Stack) -> list[dict[str, Any]]:
    """GET /api/v1/sparkplug/nodes of the replica."""
    return httpx.get(  # type: ignore[no-any-return]  # the API's JSON
        stack.replica.url("/api/v1/sparkplug/nodes"),
        headers=stack.replica.headers,
        timeout=5,
    ).json()


def readings(dsn: str, device: str) -> list[tuple[Any, ...]]:
    return query(
        dsn, "SELECT seq, idx, name, num, txt FROM readings WHERE device_id = %s ORDER BY seq, idx, name", device
    )


def values_of(dsn: str, device: str, name: str) -> list[Any]:
    return [r[3] if r[3] is not None else r[4] for r in readings(dsn, device) if r[2] == name]


def node_state(stack: Stack) -> tuple[Any, ...]:
    return query(stack.control, "SELECT session, bd_seq, online FROM sparkplug_nodes WHERE node_key = %s", NODE)[0]


def device_online(stack: Stack, device: str) -> bool:
    rows = query(
        stack.control,
        "SELECT b.online FROM sparkplug_births b JOIN sparkplug_nodes n USING (node_key)"
        " WHERE b.node_key = %s AND b.device = %s AND b.session = n.session",
        NODE,
        device,
    )
    return bool(rows and rows[0][0])


def test_a_tahu_edge_node_flows_into_the_regions_the_policy_allows_exactly_once(stack: Stack) -> None:
    eu, us = stack.regions["eu-central"], stack.regions["us-east"]
    node = stack.node("tahu-01", ["press-01"])

    # Births: the node and its device are online; the birth's values are stored (a DE machine metric in both
    # candidate regions, the operator badge, personal, only in eu-central); bdSeq and Node Control are not data.
    wait_until(lambda: len(values_of(eu, PRESS, "operator_badge")) == 1, 20, "DBIRTH stored")
    assert node_state(stack) == (1, 0, True) and device_online(stack, "press-01")
    assert values_of(eu, PRESS, "barrel_temp_c") == [220.5] and values_of(us, PRESS, "barrel_temp_c") == [220.5]
    assert values_of(eu, PRESS, "fault_code") == [-3]  # Int64 two's complement
    assert values_of(eu, PRESS, "mold_clamped") == [1.0]
    assert values_of(eu, PRESS, "shift_started") == ["2025-12-04T08:00:00.000+00:00"]
    assert values_of(us, PRESS, "operator_badge") == []
    assert values_of(eu, "de-munich-spb-node-01", "firmware") == ["tahu-js-3.2.4"]

    # DDATA with aliases only: resolved from the DBIRTH. Every fifth message carries the badge (alias 5).
    def ddata(i: int) -> None:
        metrics = [{"alias": 1, "type": "Double", "value": 1000.0 + i}, {"alias": 3, "type": "Int32", "value": i}]
        if i % 5 == 0:
            metrics.append({"alias": 5, "type": "String", "value": f"B-{i}"})
        node.send(cmd="ddata", device="press-01", metrics=metrics)

    for i in range(1, 21):
        ddata(i)
    wait_until(lambda: len(values_of(eu, PRESS, "cycle_count")) == 21, 20, "20 DDATA stored")
    assert sorted(values_of(eu, PRESS, "barrel_temp_c")) == [220.5, *[1000.0 + i for i in range(1, 21)]]
    assert sorted(values_of(us, PRESS, "barrel_temp_c")) == sorted(values_of(eu, PRESS, "barrel_temp_c"))
    assert sorted(values_of(eu, PRESS, "operator_badge")) == sorted(["B-1001", "B-5", "B-10", "B-15", "B-20"])
    assert values_of(us, PRESS, "operator_badge") == []
    decisions = query(
        stack.control,
        "SELECT category, region, outcome, count(*) FROM decisions WHERE device_id = %s GROUP BY 1, 2, 3 ORDER BY 1, 2",
        PRESS,
    )
    assert ("personal", "us-east", "denied") in [d[:3] for d in decisions]
    assert ("personal", "eu-central", "stored") in [d[:3] for d in decisions]
    # the audit trail: each decision leads to the Sparkplug topic it was taken for
    topics = query(
        stack.control,
        "SELECT DISTINCT m.topic FROM decisions d JOIN sparkplug_messages m ON "
        "m.device_id = d.device_id AND m.position = d.seq WHERE d.device_id = %s",
        PRESS,
    )
    assert sorted(t for (t,) in topics) == [
        "spBv1.0/munich/DBIRTH/tahu-01/press-01",
        "spBv1.0/munich/DDATA/tahu-01/press-01",
    ]

    # A historical value (is_historical, its own timestamp ten minutes ago) is stored at its timestamp.
    then_ms = int(time.time() * 1000) - 600_000
    node.send(
        cmd="ddata",
        device="press-01",
        metrics=[{"alias": 1, "type": "Double", "value": 555.5, "isHistorical": True, "timestamp": then_ms}],
    )
    wait_until(
        lambda: all(555.5 in values_of(dsn, PRESS, "barrel_temp_c") for dsn in (eu, us)), 20, "historical value stored"
    )
    stamped = query(
        eu,
        "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM readings WHERE device_id = %s AND "
        "name = 'barrel_temp_c' AND num = 555.5",
        PRESS,
    )
    assert stamped == [(then_ms,)]

    # A forced seq gap: one Rebirth request, the node's births follow, the gap closes (closed by the rebirth).
    assert stack.stats()["sparkplug_rebirths"] == 0
    node.send(cmd="skip", n=3)
    ddata(21)
    node.wait_for(lambda e: e["event"] == "rebirth")
    node.wait_for(lambda e: e["event"] == "births")
    wait_until(lambda: node_state(stack)[0] == 2, 20, "session 2 after the rebirth")
    wait_until(
        lambda: (
            query(
                stack.control,
                "SELECT count(*) FROM sequence_gaps WHERE device_id = %s AND closed_at "
                "IS NOT NULL AND closed_by = 'rebirth'",
                NODE,
            )
            == [(1,)]
        ),
        20,
        "gap closed by the rebirth",
    )
    assert query(
        stack.control, "SELECT last_missing - first_missing + 1 FROM sequence_gaps WHERE device_id = %s", NODE
    ) == [(3,)]
    gaps = httpx.get(
        stack.replica.url("/api/v1/gaps"),
        params={"device_id": NODE, "state": "all"},
        headers=stack.replica.headers,
        timeout=5,
    ).json()
    assert [(g["missing"], g["closed_by"]) for g in gaps["items"]] == [(3, "rebirth")]
    assert stack.stats()["sparkplug_rebirths"] == 1

    # An ingest kill -9 in the middle of a burst: every message stored exactly once after the restart.
    before = 1 + 20 + 1 + 1  # DBIRTH, DDATA 1-20, the DDATA after the gap, the rebirth's DBIRTH

    def burst() -> None:
        for i in range(100, 300):
            ddata(i)

    pump = threading.Thread(target=burst)
    pump.start()
    wait_until(lambda: len(values_of(eu, PRESS, "cycle_count")) > before + 20, 20, "part of the burst stored")
    stack.replica.kill()
    pump.join()
    stack.replica.start()
    expected = before + 200
    wait_until(lambda: len(values_of(eu, PRESS, "cycle_count")) >= expected, 60, "the burst stored after kill -9")
    wait_until(lambda: stack.stats()["inflight"] == 0, 20, "nothing in flight")
    assert len(values_of(eu, PRESS, "cycle_count")) == expected
    assert sorted(v for v in values_of(us, PRESS, "cycle_count") if v >= 100) == list(range(100, 300))

    # The node dies (its Will, NDEATH with bdSeq 0, closes session 2) and reconnects with bdSeq 1.
    rebirths = sum(1 for e in node.seen if e["event"] == "rebirth")
    node.kill()
    wait_until(lambda: node_state(stack)[2] is False, 20, "node offline after its Will")
    assert not device_online(stack, "press-01")
    listed = [n for n in api_nodes(stack) if n["edge_node"] == "tahu-01"]
    assert [(n["session"], n["bd_seq"], n["online"], n["reason"], n["site"]) for n in listed] == [
        (2, 0, False, "NDEATH", "de-munich")
    ]
    assert [(d["device"], d["device_id"], d["online"]) for d in listed[0]["devices"]] == [("press-01", PRESS, False)]
    node = stack.node("tahu-01", ["press-01"], bd_seq=1)
    wait_until(lambda: node_state(stack) == (3, 1, True) and device_online(stack, "press-01"), 20, "back online")
    assert [(n["online"], n["reason"]) for n in api_nodes(stack) if n["edge_node"] == "tahu-01"] == [(True, "NBIRTH")]
    for i in range(500, 510):
        ddata(i)
    wait_until(lambda: 509 in values_of(eu, PRESS, "cycle_count"), 20, "data of the new session stored")
    node.stop()

    # Exactly once, everywhere: one row per (position, metric); each DDATA value once in each region it may live in.
    for dsn in (eu, us):
        assert query(
            dsn,
            "SELECT count(*) FROM (SELECT seq, idx, name FROM readings WHERE device_id = %s "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
            PRESS,
        ) == [(0,)]
        cycles = [v for v in values_of(dsn, PRESS, "cycle_count") if v != -1]  # -1: the births' value
        assert sorted(cycles) == sorted([*range(1, 22), *range(100, 300), *range(500, 510)])
    assert query(stack.control, "SELECT count(*) FROM rejections WHERE topic LIKE 'spBv1.0/munich/%%/tahu-01%%'") == [
        (0,)
    ]
    assert [e for e in node.seen if e["event"] == "rebirth"] == []  # the session after the reconnection
    assert rebirths == 1  # one Rebirth request in all, for the gap


def _ddata(seq: int, metrics: list[tuple[int, int, Any]]) -> bytes:
    """A DDATA payload for the cases no conforming edge node produces (data before any birth)."""
    message = pb.Payload(timestamp=int(time.time() * 1000), seq=seq)
    for alias, datatype, value in metrics:
        m = message.metrics.add(alias=alias, datatype=datatype)
        m.double_value = value
    return message.SerializeToString()


def test_bad_sparkplug_input_is_quarantined_with_its_reason_and_the_ingest_goes_on(stack: Stack) -> None:
    eu = stack.regions["eu-central"]
    device = "de-munich-spb-press-02"
    before = dict(stack.stats()["rejections"])
    node = stack.node("tahu-02", ["press-02"])
    wait_until(lambda: values_of(eu, device, "cycle_count") == [-1], 20, "DBIRTH of press-02 stored")

    rebirths = stack.stats()["sparkplug_rebirths"]
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="munich.tahu-03", protocol=mqtt.MQTTv5)
    raw.username_pw_set("munich.tahu-03", stack.secret("munich.tahu-03"))  # an edge node that never births
    raw.connect("127.0.0.1", stack.broker.port)
    raw.loop_start()
    raw.publish("spBv1.0/munich/DDATA/tahu-03/press-03", b"\x0a\xff\xff\xff garbage", qos=1).wait_for_publish(5)
    raw.publish("spBv1.0/munich/DDATA/tahu-03/press-03", _ddata(7, [(1, 10, 1.5)]), qos=1).wait_for_publish(5)
    node.send(
        cmd="ddata",
        device="press-02",
        metrics=[{"alias": 99, "type": "Double", "value": 1.0}, {"alias": 3, "type": "Int32", "value": 42}],
    )
    node.send(
        cmd="ddata",
        device="press-02",
        metrics=[
            {
                "name": "Recipe/Table",
                "type": "DataSet",
                "value": {"numOfColumns": 1, "columns": ["step"], "types": ["Int32"], "rows": [[1]]},
            },
            {"name": "Secret/Sauce", "type": "Double", "value": 3.0},
            {"alias": 3, "type": "Int32", "value": 43},
        ],
    )
    node.send(cmd="ddata", device="press-02", metrics=[{"alias": 3, "type": "Int32", "value": 44}])
    wait_until(lambda: 44 in values_of(eu, device, "cycle_count"), 20, "valid data after the bad input stored")

    # data before any birth is held back INGEST_SPARKPLUG_BIRTH_WAIT_S (2 s: another replica may be committing the
    # birth), then quarantined
    wait_until(
        lambda: stack.stats()["rejections"].get("spb_no_birth", 0) > before.get("spb_no_birth", 0),
        20,
        "spb_no_birth quarantined after the wait",
    )
    got = {code: n - before.get(code, 0) for code, n in stack.stats()["rejections"].items()}
    for code in ("malformed", "spb_no_birth", "spb_unknown_alias", "spb_unsupported_type", "undeclared_field"):
        assert got.get(code) == 1, (code, got)
    rows = {
        r[0]: r
        for r in query(
            stack.control,
            "SELECT code, detail, state, payload_region, topic FROM rejections WHERE topic LIKE 'spBv1.0/%%'",
        )
    }
    assert "not a Sparkplug B payload" in rows["malformed"][1]
    assert "before its NBIRTH" in rows["spb_no_birth"][1] and rows["spb_no_birth"][4].endswith("tahu-03/press-03")
    assert rows["malformed"][4] == "spBv1.0/munich/DDATA/tahu-03/press-03"
    assert "alias 99" in rows["spb_unknown_alias"][1]
    assert "DataSet" in rows["spb_unsupported_type"][1]
    assert "Secret/Sauce" in rows["undeclared_field"][1]
    for code in ("malformed", "spb_no_birth", "spb_unknown_alias", "spb_unsupported_type", "undeclared_field"):
        assert rows[code][2:4] == ("held", "eu-central"), rows[code]  # DE payloads, held in DE
    # tahu-02's own metric (its NBIRTH's Properties/Firmware) has no registry device: metadata only
    assert rows["unknown_device"][2:4] == ("discarded", None) and "munich/tahu-02" in rows["unknown_device"][1]
    assert sorted(v for v in values_of(eu, device, "cycle_count") if v >= 42) == [42, 43, 44]  # the rest stored
    # Data before a birth asks that node for a Rebirth, and the alias never declared asks tahu-02, which births again
    assert stack.stats()["sparkplug_rebirths"] == rebirths + 2
    node.wait_for(lambda e: e["event"] == "rebirth")
    raw.loop_stop()
    node.stop()
    assert stack.replica.stats()["healthy"]


def test_two_replicas_share_an_edge_node_without_losing_its_births(stack: Stack) -> None:
    """The shared subscription spreads a node's births and data over two replicas: a message worked out before the
    birth it follows is committed (by the other replica) is held back and worked out again, not quarantined."""
    eu = stack.regions["eu-central"]
    device = "de-munich-spb-press-04"
    secret = stack.secret("spb-ingest-2")
    second = Replica(
        "spb-ingest-2",
        stack.broker,
        stack.control,
        stack.regions,
        stack.tmp,
        INGEST_REGISTRY_FILE=str(stack.tmp / "registry.yaml"),
        INGEST_MQTT_USERNAME="spb-ingest-2",
        INGEST_MQTT_PASSWORD=secret,
    ).start()
    first_before = stack.replica.stats()["messages"]["stored"]
    rebirths = stack.stats()["sparkplug_rebirths"]
    try:
        node = stack.node("tahu-04", ["press-04"])
        for i in range(1, 41):
            node.send(cmd="ddata", device="press-04", metrics=[{"alias": 3, "type": "Int32", "value": i}])
        wait_until(lambda: len(values_of(eu, device, "cycle_count")) == 41, 30, "births and 40 DDATA stored")
        node.stop()
        assert sorted(values_of(eu, device, "cycle_count")) == [-1, *range(1, 41)]
        # nothing quarantined but the node's own firmware metric (no registry device for tahu-04 itself)
        assert query(stack.control, "SELECT code, topic FROM rejections WHERE topic LIKE '%%/tahu-04%%'") == [
            ("unknown_device", "spBv1.0/munich/NBIRTH/tahu-04")
        ]
        assert second.stats()["sparkplug_rebirths"] == 0 and stack.stats()["sparkplug_rebirths"] == rebirths
        shares = [stack.replica.stats()["messages"]["stored"] - first_before, second.stats()["messages"]["stored"]]
        assert all(n > 0 for n in shares), shares  # both replicas took part
    finally:
        second.stop()
