"""The versioned batch payload (JSON, UTF-8) and the gateway status message.

A batch holds the readings of one device. ``seq`` is the device's monotonic batch sequence number
(persisted by the agent), so the ingest can detect gaps and duplicates: a reading is identified by
``(device_id, seq, index in readings)``. The payload may *claim* an origin; the ingest never trusts
it and compares it with its device registry.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from wire.errors import DecodeError, SchemaVersionError
from wire.topics import valid_id

SCHEMA_VERSION = 1
MAX_READINGS_PER_BATCH = 5000
MAX_VALUES_PER_READING = 256
MAX_TEXT_LENGTH = 1024

Value = float | int | bool | Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] | None
FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reading(_Frozen):
    """One sample of a device: when it was taken (at the source) and its field values."""

    ts: AwareDatetime = Field(description="Time the source took the sample (RFC 3339 with offset).")
    values: dict[FieldName, Value] = Field(
        description="Field name -> value. Categories come from the device registry, never from here.",
        min_length=1,
        max_length=MAX_VALUES_PER_READING,
    )

    @field_validator("values")
    @classmethod
    def _finite(cls, values: dict[str, Value]) -> dict[str, Value]:
        for name, v in values.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"field {name!r} is not a finite number")
        return values


class OriginClaim(_Frozen):
    """What the publisher says about its origin. Checked against the registry, never trusted."""

    site_id: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class Batch(_Frozen):
    """A batch of readings of one device, numbered by a per-device monotonic sequence."""

    v: Literal[1] = Field(default=SCHEMA_VERSION, description="Schema version of this payload.")
    device_id: str = Field(description="Device id; must equal the device segment of the topic.")
    seq: int = Field(ge=0, description="Per-device monotonic batch sequence number.")
    sent_at: AwareDatetime = Field(description="Time the agent published the batch.")
    origin: OriginClaim | None = Field(default=None, description="Optional origin claim, cross-checked.")
    key_id: str | None = Field(
        default=None, description="Id of the gateway key used for edge pseudonymization, if any."
    )
    edge_transforms: dict[FieldName, Literal["pseudonymized"]] = Field(
        default_factory=dict, description="Fields transformed at the edge before publishing."
    )
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        if not valid_id(value):
            raise ValueError(f"device id {value!r} is not a valid id")
        return value


class Status(_Frozen):
    """Retained birth / Last Will message of a gateway."""

    v: Literal[1] = SCHEMA_VERSION
    gateway_id: str
    site_id: str
    state: Literal["online", "offline"]
    at: datetime
    devices: list[str] = Field(default_factory=list)
    reason: str | None = None


def encode_batch(batch: Batch) -> bytes:
    """Serialize a batch to its compact JSON wire form."""
    return batch.model_dump_json(exclude_none=True, exclude_defaults=False).encode()


def _first_error(exc: ValidationError) -> DecodeError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return DecodeError(err.get("msg", "invalid"), field=loc or None)


def decode_batch(payload: bytes | str) -> Batch:
    """Parse and validate a batch; raise :class:`DecodeError` naming the first bad field."""
    try:  # fast path (the ingest's hot path): pydantic's own JSON parser, in half the time of json.loads + validate
        return Batch.model_validate_json(payload)
    except ValidationError:
        pass  # the steps below say what is wrong: not JSON, not an object, schema version, first bad field
    try:
        raw: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DecodeError("payload must be a JSON object")
    version = raw.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(version)
    try:
        return Batch.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the batch payload (served by the API, exported in ``wire/schema``)."""
    schema = Batch.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:residency-telemetry:wire:batch:v1"
    return schema
