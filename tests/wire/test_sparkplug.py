"""Sparkplug B topics, payload decoding and value conversion (wire/sparkplug), the placement of a wrapping seq
(ingest.sparkplug.sessions.place) and the registry's Sparkplug entries."""

from __future__ import annotations

import pytest

from ingest.registry import Registry
from ingest.sparkplug.sessions import place
from wire.sparkplug import (
    SparkplugError,
    SparkplugTopic,
    convert,
    decode,
    rebirth_payload,
    subscriptions,
)
from wire.sparkplug import sparkplug_b_pb2 as pb


def test_topics() -> None:
    t = SparkplugTopic.parse("spBv1.0/munich/DDATA/tahu-01/press 1")
    assert (t.group, t.type, t.edge_node, t.device, t.node_key) == (
        "munich",
        "DDATA",
        "tahu-01",
        "press 1",
        "spb:munich/tahu-01",
    )
    assert str(t) == "spBv1.0/munich/DDATA/tahu-01/press 1"
    assert SparkplugTopic.parse("spBv1.0/g/NBIRTH/n").device is None
    for bad in (
        "spBv1.0/g/NBIRTH/n/d",
        "spBv1.0/g/DDATA/n",
        "spBv1.0/g/XDATA/n",
        "spAv1.0/g/NDATA/n",
        "spBv1.0//NDATA/n",
        "spBv1.0/g/NDATA/n/d/e",
    ):
        with pytest.raises(SparkplugError) as err:
            SparkplugTopic.parse(bad)
        assert err.value.code == "bad_topic"
    assert subscriptions("ingest")[0] == "$share/ingest/spBv1.0/+/NBIRTH/+"
    assert "spBv1.0/+/DDATA/+/+" in subscriptions(None)


def _metric(payload: pb.Payload, datatype: int, field: str, value: object, **kw: object) -> None:
    m = payload.metrics.add(datatype=datatype, **kw)
    setattr(m, field, value)


def test_decode_and_convert_every_supported_datatype() -> None:
    p = pb.Payload(timestamp=1_700_000_000_000, seq=7)
    _metric(p, 1, "int_value", 2**32 - 5, name="i8")  # Int8 -5 as the uint32 two's complement
    _metric(p, 3, "int_value", 2**31 + 1, name="i32")
    _metric(p, 4, "long_value", 2**64 - 3, name="i64")
    _metric(p, 8, "long_value", 10**12, name="u64")
    _metric(p, 9, "float_value", 0.5, name="f")
    _metric(p, 10, "double_value", 220.25, alias=4)
    _metric(p, 11, "boolean_value", True, name="b", is_historical=True)
    _metric(p, 12, "string_value", "B-1", name="s")
    _metric(p, 13, "long_value", 1_764_835_200_000, name="dt")
    p.metrics.add(name="n", datatype=10, is_null=True)
    decoded = decode(p.SerializeToString())
    assert (decoded.timestamp, decoded.seq) == (1_700_000_000_000, 7)
    got = [convert(m.datatype, m) for m in decoded.metrics]  # type: ignore[arg-type]  # every metric here declares its datatype
    assert got == [-5, -(2**31) + 1, -3, 10**12, 0.5, 220.25, True, "B-1", "2025-12-04T08:00:00.000+00:00", None]
    assert decoded.metrics[5].name is None and decoded.metrics[5].alias == 4
    assert decoded.metrics[6].is_historical


@pytest.mark.parametrize(
    ("datatype", "field", "value", "code"),
    [
        (16, None, None, "spb_unsupported_type"),  # DataSet
        (17, "bytes_value", b"x", "spb_unsupported_type"),
        (8, "long_value", 2**60, "spb_bad_value"),  # beyond 10^15
        (10, "string_value", "1.5", "spb_bad_value"),  # a Double carried as a string
    ],
)
def test_unsupported_and_bad_values(datatype: int, field: str | None, value: object, code: str) -> None:
    p = pb.Payload(seq=1)
    m = p.metrics.add(name="x", datatype=datatype)
    if field is not None:
        setattr(m, field, value)
    else:
        m.dataset_value.num_of_columns = 1
    with pytest.raises(SparkplugError) as err:
        convert(datatype, decode(p.SerializeToString()).metrics[0])
    assert err.value.code == code


def test_undecodable_payload() -> None:
    with pytest.raises(SparkplugError) as err:
        decode(b"\x0a\xff\xff\xff garbage")
    assert err.value.code == "malformed"


def test_rebirth_command() -> None:
    p = pb.Payload()
    p.ParseFromString(rebirth_payload(123))
    assert [(m.name, m.datatype, m.boolean_value) for m in p.metrics] == [("Node Control/Rebirth", 11, True)]


@pytest.mark.parametrize(
    ("last", "seq", "expected"),
    [
        (0, 1, 1),
        (255, 0, 256),
        (300, 45, 301),
        (300, 44, 300),
        (300, 40, 296),  # late: behind
        (10, 138, 138),
        (10, 139, -117),  # at most 128 ahead
    ],
)
def test_place(last: int, seq: int, expected: int) -> None:
    assert place(last, seq) == expected


def test_registry_sparkplug_entries(registry: Registry) -> None:
    raw = registry.model_dump()
    raw["profiles"]["spb"] = {
        "fields": {
            "t": {"category": "machine", "sparkplug_metric": "A/T"},
            "badge": {"category": "personal", "type": "text", "sparkplug_metric": "Operator/Badge"},
        }
    }
    raw["devices"]["spb-1"] = {
        "site": "de-munich",
        "profile": "spb",
        "sparkplug": {"group": "g", "edge_node": "n", "device": "d"},
    }
    reg = Registry.model_validate(raw)
    assert reg.sparkplug_device("g", "n", "d") == "spb-1" and reg.sparkplug_device("g", "n", None) is None
    assert reg.sparkplug_node_site("g", "n") == "de-munich"
    assert reg.profiles["spb"].sparkplug_fields() == {"A/T": "t", "Operator/Badge": "badge"}
    raw["devices"]["spb-2"] = {"site": "us-detroit", "profile": "spb", "sparkplug": {"group": "g", "edge_node": "n"}}
    with pytest.raises(ValueError, match="an edge node is at one site"):
        Registry.model_validate(raw)
    raw["devices"]["spb-2"] = {
        "site": "de-munich",
        "profile": "spb",
        "sparkplug": {"group": "g", "edge_node": "n", "device": "d"},
    }
    with pytest.raises(ValueError, match="is already device 'spb-1'"):
        Registry.model_validate(raw)
