import json
from datetime import UTC, datetime

import jsonschema
import pytest

from wire import Batch, DecodeError, Reading, SchemaVersionError, decode_batch, encode_batch, json_schema


def _batch(**over: object) -> dict:
    raw = {
        "v": 1, "device_id": "de-munich-cnc-01", "seq": 3, "sent_at": "2026-11-22T07:00:00Z",
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
        (json.dumps(_batch(readings=[{"ts": "2026-11-22T07:00:00Z", "values": {"Bad-Name": 1}}])).encode(),
         "readings.0.values.Bad-Name.[key]"),
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
