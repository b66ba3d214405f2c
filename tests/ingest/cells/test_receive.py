"""Parts: built from the router's rows, decoded, and checked by the receiving cell against its topology,
registry and own policy (real Rego engine)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.cells.envelope import decode_part, encode_part, parse_xfer_topic, part_id, part_of, rows_of, xfer_topic
from ingest.cells.receive import CellContext, TransferRefused, check_part
from ingest.cells.topology import load_topology
from ingest.pipeline.router import Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.records import Row
from ingest.registry import Registry, load_registry
from policy import CachedPolicyEngine, EmbeddedPolicyEngine
from wire.errors import DecodeError

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC).isoformat()
CNC = {
    "spindle_speed_rpm": 1200.0,
    "spindle_temp_c": 40.0,
    "vibration_mm_s": 1.0,
    "power_kw": 5.0,
    "tool_wear_pct": 3.0,
    "fault_code": 0,
    "operator_badge": "CN-B1",
}


@pytest.fixture(scope="module")
def engine() -> CachedPolicyEngine:
    return CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(), maxsize=1000)


def _router(registry: Registry, engine: CachedPolicyEngine, cell: str) -> Router:
    topology = load_topology(REPO / "deploy" / "local" / "cells.yaml")
    return Router(
        registry=registry,
        policy=engine,
        pseudonymizer=Pseudonymizer(b"k"),
        max_bytes=1 << 20,
        cell=CellContext(cell, topology),
    )


def _payload(device: str, seq: int, values: dict[str, Any]) -> bytes:
    return json.dumps(
        {"v": 1, "device_id": device, "seq": seq, "sent_at": NOW, "readings": [{"ts": NOW, "values": values}]}
    ).encode()


def _cn_part(registry: Registry, engine: CachedPolicyEngine, seq: int = 1) -> tuple[str, bytes, list[Row]]:
    """The part the cn cell's router makes for us-east from one Shenzhen message."""
    routed = _router(registry, engine, "cn").route(
        "tele/v1/cn-shenzhen/cn-shenzhen-cnc-01", _payload("cn-shenzhen-cnc-01", seq, CNC)
    )
    assert set(routed.rows) == {"cn-north", "us-east"}
    rows = routed.rows["us-east"]
    part = part_of(rows, from_cell="cn", to_cell="global", region="us-east")
    return xfer_topic("global", "cn", "cn-shenzhen-cnc-01"), encode_part(part), rows


def test_a_part_carries_exactly_the_rows_the_sending_router_made(
    registry: Registry, engine: CachedPolicyEngine
) -> None:
    _topic, body, rows = _cn_part(registry, engine)
    part = decode_part(body)
    assert rows_of(part) == rows
    assert {r.category for r in part.rows} == {"machine"}  # the badge never makes a part for us-east
    assert b"CN-B1" not in body and b"operator_badge" not in body
    assert part.part_id == part_id("cn-shenzhen-cnc-01", 1, "us-east", part.policy_revision)
    assert parse_xfer_topic(xfer_topic("global", "cn", "d-1")) == ("global", "cn", "d-1")


def test_the_receiving_router_accepts_it_and_logs_its_own_decision(
    registry: Registry, engine: CachedPolicyEngine
) -> None:
    topic, body, rows = _cn_part(registry, engine, seq=2)
    routed = _router(registry, engine, "global").receive_part(topic, body)
    assert routed.rejections == [] and routed.rows == {"us-east": rows}
    assert routed.receipt == ("cn", decode_part(body).part_id)
    assert [(d.category, d.region, d.outcome) for d in routed.decisions] == [("machine", "us-east", "stored")]


_VALUE_FIELDS = {"name": 0, "category": 1, "num": 2, "txt": 3, "transform": 4}


def _tamper(body: bytes, *, only_first_row: bool = False, **changes: Any) -> bytes:
    """Change a part's fields, or (row_<field>) its first value: rows are [idx, ts, [[name, category, num, txt,
    transform], ...]] per reading."""
    raw = json.loads(body)
    if only_first_row:
        raw["rows"] = raw["rows"][:1]
        raw["rows"][0][2] = raw["rows"][0][2][:1]
    for key, value in changes.items():
        if key.startswith("row_"):
            raw["rows"][0][2][0][_VALUE_FIELDS[key.removeprefix("row_")]] = value
        else:
            raw[key] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"to_cell": "ap"}, "part says cn->ap"),
        ({"region": "eu-central"}, None),  # hosted here, but the part's rows for it need their own decision
        ({"region": "cn-north"}, "region 'cn-north' is not hosted by cell 'global'"),
        ({"site_id": "de-munich"}, "is not a device of site 'de-munich'"),
        ({"origin_country": "DE"}, "part says origin DE; site cn-shenzhen is in CN"),
        ({"row_name": "secret_sauce"}, "field 'secret_sauce' is not declared"),
        (
            {
                "row_category": "personal",
                "decisions": {
                    "machine": "6f1c7f7e-3c38-4bb5-9f0e-2f5a5a1d6c11",
                    "personal": "6f1c7f7e-3c38-4bb5-9f0e-2f5a5a1d6c11",
                },
            },
            "is machine here, the part says personal",
        ),
    ],
)
def test_a_part_that_does_not_add_up_is_refused(
    registry: Registry, engine: CachedPolicyEngine, change: dict[str, Any], reason: str | None
) -> None:
    topic, body, _rows = _cn_part(registry, engine, seq=3)
    router = _router(registry, engine, "global")
    tampered = _tamper(body, **change)
    if reason is None:  # eu-central: CN machine data may be stored there too; the check passes
        assert router.receive_part(topic, tampered).rejections == []
        return
    routed = router.receive_part(topic, tampered)
    assert [r.code for r in routed.rejections] == ["transfer_refused"]
    assert reason in routed.rejections[0].detail
    assert routed.rows == {} and routed.rejections[0].payload is None  # metadata only
    assert routed.receipt is not None  # decodable: receipted so the sender stops sending it


def test_personal_data_the_receiving_policy_keeps_out_is_refused(
    registry: Registry, engine: CachedPolicyEngine
) -> None:
    topic, body, _rows = _cn_part(registry, engine, seq=4)
    tampered = _tamper(
        body,
        only_first_row=True,
        row_name="operator_badge",
        row_category="personal",
        row_num=None,
        row_txt="CN-B1",
        decisions={"personal": "6f1c7f7e-3c38-4bb5-9f0e-2f5a5a1d6c11"},
    )
    routed = _router(registry, engine, "global").receive_part(topic, tampered)
    assert [r.code for r in routed.rejections] == ["transfer_refused"] and routed.rows == {}
    assert "does not allow personal data from CN in us-east" in routed.rejections[0].detail
    with pytest.raises(TransferRefused, match="'mars' is not a peer cell"):
        check_part(
            "xfer/v1/global/mars/x",
            tampered,
            cell=CellContext("global", load_topology(REPO / "deploy/local/cells.yaml")),
            registry=registry,
            decide=lambda *_a: pytest.fail("not reached"),
        )


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("xfer/v1/ap/cn/cn-shenzhen-cnc-01", "addressed to cell 'ap'"),
        ("xfer/v1/global/mars/cn-shenzhen-cnc-01", "'mars' is not a peer cell"),
        ("xfer/v1/global/global/cn-shenzhen-cnc-01", "'global' is not a peer cell"),
        ("xfer/v1/global/ap/cn-shenzhen-cnc-01", "part says cn->global"),
    ],
)
def test_the_topic_must_name_this_cell_and_the_sending_peer(
    registry: Registry, engine: CachedPolicyEngine, topic: str, reason: str
) -> None:
    _topic, body, _rows = _cn_part(registry, engine, seq=5)
    routed = _router(registry, engine, "global").receive_part(topic, body)
    assert [r.code for r in routed.rejections] == ["transfer_refused"] and reason in routed.rejections[0].detail


def test_an_undecodable_part_is_refused_and_not_receipted(registry: Registry, engine: CachedPolicyEngine) -> None:
    routed = _router(registry, engine, "global").receive_part("xfer/v1/global/cn/x", b"[" * 500)
    assert [r.code for r in routed.rejections] == ["transfer_refused"] and routed.receipt is None
    with pytest.raises(DecodeError, match="carry no decision"):
        _topic, body, _rows = _cn_part(registry, engine, seq=6)
        decode_part(_tamper(body, decisions={}))


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        ((b'"seq":7', b'"seq":9223372036854775808'), "seq"),  # past bigint
        ((b'"device_id":"cn-shenzhen-cnc-01"', b'"device_id":"cn-shenzhen-cnc-01\\u0000"'), "device_id"),
        ((b'"policy_revision":"', b'"policy_revision":"\\u0000'), "policy_revision"),
    ],
)
def test_a_hostile_part_gets_the_wires_bounds(
    registry: Registry, engine: CachedPolicyEngine, replace: tuple[bytes, bytes], field: str
) -> None:
    """A peer is trusted to send what its policy allowed, not to be unable to err: the wire's bounds hold."""
    _topic, body, _rows = _cn_part(registry, engine, seq=7)
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert replace[0] in compact
    with pytest.raises(DecodeError) as err:
        decode_part(compact.replace(replace[0], replace[1], 1))
    assert err.value.field == field


@pytest.mark.parametrize("num", ["1e400", "NaN", "Infinity", "2e15", "5" * 5000])
def test_a_part_with_a_number_the_stores_cannot_hold_is_refused(
    registry: Registry, engine: CachedPolicyEngine, num: str
) -> None:
    topic, body, _rows = _cn_part(registry, engine, seq=8)
    raw = json.loads(body)
    raw["rows"][0][2][0][_VALUE_FIELDS["num"]] = "@NUM@"
    text = json.dumps(raw).replace('"@NUM@"', num)
    routed = _router(registry, engine, "global").receive_part(topic, text.encode())
    assert [r.code for r in routed.rejections] == ["transfer_refused"] and routed.rows == {}


def test_a_cells_router_refuses_sites_of_other_cells_and_holds_quarantine_at_home(
    registry: Registry, engine: CachedPolicyEngine
) -> None:
    router = _router(registry, engine, "global")
    routed = router.route("tele/v1/cn-shenzhen/cn-shenzhen-cnc-01", _payload("cn-shenzhen-cnc-01", 1, CNC))
    assert [r.code for r in routed.rejections] == ["wrong_cell"] and routed.rejections[0].payload is None
    assert "served by cell 'cn'" in routed.rejections[0].detail
    held = _router(registry, engine, "cn").route("tele/v1/cn-shenzhen/cn-shenzhen-cnc-01", b"{broken")
    assert held.rejections[0].payload_region == "cn-north"  # never a region of another cell


def test_a_cells_router_refuses_sparkplug_edge_nodes_of_other_cells(engine: CachedPolicyEngine) -> None:
    """docs/sparkplug.md: a Sparkplug edge node connects to its own cell's broker, like our agent."""
    from wire.sparkplug import sparkplug_b_pb2 as pb

    base = load_registry(REPO / "deploy" / "local" / "registry.yaml").model_dump()
    base["devices"]["cn-spb-press"] = {
        "site": "cn-shenzhen",
        "profile": "injection_press",
        "sparkplug": {"group": "shenzhen", "edge_node": "ign-1", "device": "p1"},
    }
    registry = Registry.model_validate(base)
    payload = pb.Payload(timestamp=1, seq=0).SerializeToString()
    topic = "spBv1.0/shenzhen/NBIRTH/ign-1"
    refused = _router(registry, engine, "global").parse_sparkplug(topic, payload)
    assert [r.code for r in refused.rejections] == ["wrong_cell"]  # type: ignore[union-attr]  # a refusal, not an accepted message
    assert refused.rejections[0].payload is None and "served by cell 'cn'" in refused.rejections[0].detail  # type: ignore[union-attr]  # as above
    accepted = _router(registry, engine, "cn").parse_sparkplug(topic, payload)
    assert accepted.site_id == "cn-shenzhen" and accepted.device_id is None  # type: ignore[union-attr]  # accepted: a parsed message
