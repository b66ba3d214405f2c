import json
from datetime import UTC, datetime

import jsonschema
import pytest

from wire import Batch, DecodeError, Reading, SchemaVersionError, decode_batch, encode_batch, json_schema


def _batch(**over: object) -> dict[str, object]:
    raw = {
        "v": 1,
        "device_id": "de-munich-cnc-01",
        "seq": 3,
        "sent_at": "2026-11-22T07:00:00Z",
        "readings": [{"ts": "2026-11-22T06:59:59.5Z", "values": {"power_kw": 4.5, "operator_badge": "B-1"}}],
    }
    raw.update(over)
    return raw


def test_round_trip() -> None:
    now = datetime.now(UTC)
    batch = Batch(device_id="d-1", seq=0, sent_at=now, readings=[Reading(ts=now, values={"a": 1, "b": "x"})])
    assert decode_batch(encode_batch(batch)) == batch


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        (json.dumps(_batch(seq=-1)).encode(), "seq"),
        (json.dumps(_batch(readings=[])).encode(), "readings"),
        (json.dumps(_batch(device_id="bad id/with slash")).encode(), "device_id"),
        (json.dumps(_batch(sent_at="2026-11-22T07:00:00")).encode(), "sent_at"),  # no offset
        (json.dumps(_batch(extra=1)).encode(), "extra"),
        (
            json.dumps(_batch(readings=[{"ts": "2026-11-22T07:00:00Z", "values": {"Bad-Name": 1}}])).encode(),
            "readings.0.values.Bad-Name.[key]",
        ),
    ],
)
def test_decode_errors_name_the_field(payload: bytes, field: str | None) -> None:
    with pytest.raises(DecodeError) as info:
        decode_batch(payload)
    assert info.value.field == field


def test_non_finite_values_are_rejected() -> None:
    raw = json.dumps(_batch()).replace("4.5", "NaN").encode()
    with pytest.raises(DecodeError, match="finite"):
        decode_batch(raw)


def test_unknown_schema_version() -> None:
    with pytest.raises(SchemaVersionError):
        decode_batch(json.dumps(_batch(v=2)).encode())


def test_json_schema_accepts_valid_and_rejects_invalid() -> None:
    schema = json_schema()
    jsonschema.validate(_batch(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_batch(seq="x"), schema)


# --- bounds: what a hostile gateway can put in a payload (docs/message-isolation.md) -------------------------


def _with_value(raw_value: str) -> bytes:
    """A valid batch whose power_kw is replaced by ``raw_value`` as written in the JSON text."""
    return json.dumps(_batch()).replace("4.5", raw_value).encode()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[" * 1000 + b"]" * 1000, "recursion limit"),  # json.loads raised RecursionError here
        (json.dumps(_batch())[:-1].encode() + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "recursion limit"),
        (_with_value("9" * 5000), "number out of range"),  # json.loads raised ValueError (int digits limit)
        (_with_value("1" + "0" * 400), "out of range"),  # float() raised OverflowError downstream
        (_with_value("1e400"), "finite"),
        (_with_value("1.5e308"), "out of range"),  # two of these overflowed the rollup's sum
        (_with_value("-2e15"), "out of range"),
        (_with_value('"badge\\u0000smuggled"'), "NUL"),
        (json.dumps(_batch(seq=2**63)).encode(), "less than or equal to 9223372036854775807"),
        (json.dumps(_batch(seq=True)).encode(), "valid integer"),  # true is not 1
        (json.dumps(_batch(seq="3")).encode(), "valid integer"),
        (json.dumps(_batch(key_id="k\u0000")).encode(), "NUL"),
    ],
)
def test_hostile_payloads_are_decode_errors_naming_the_problem(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as info:
        decode_batch(payload)
    assert "\x00" not in str(info.value)  # the error text is stored and logged


def test_a_nul_in_a_field_name_is_escaped_in_the_error() -> None:
    raw = json.dumps(_batch(readings=[{"ts": "2026-11-22T07:00:00Z", "values": {"a\u0000b": 1}}])).encode()
    with pytest.raises(DecodeError) as info:
        decode_batch(raw)
    assert "\x00" not in str(info.value) and "a\\x00b" in str(info.value)


def test_numbers_up_to_the_bound_and_text_are_accepted() -> None:
    batch = decode_batch(_with_value("1e15"))
    assert batch.readings[0].values["power_kw"] == 1e15
    assert decode_batch(_with_value("-1000000000000000")).readings[0].values["power_kw"] == -(10**15)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"reason": "lost\u0000"}, "NUL"),
        ({"gateway_id": "gw/../x"}, "valid id"),
        ({"devices": ["ok", "bad id"]}, "valid id"),
        ({"at": "2026-11-22T07:00:00"}, "timezone"),
    ],
)
def test_status_fields_are_validated(status: dict[str, object], message: str) -> None:
    from wire import decode_status

    raw = {"v": 1, "gateway_id": "gw-1", "site_id": "de-munich", "state": "online", "at": "2026-11-22T07:00:00Z"}
    with pytest.raises(DecodeError, match=message):
        decode_status(json.dumps({**raw, **status}).encode())
