"""The versioned batch payload (JSON, UTF-8) and the gateway status message.

A batch holds the readings of one device. ``seq`` is the device's monotonic batch sequence number
(persisted by the agent), so the ingest can detect gaps and duplicates: a reading is identified by
``(device_id, seq, index in readings)``. The payload may *claim* an origin; the ingest never trusts
it and compares it with its device registry.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)
from pydantic_core import from_json

from wire.errors import DecodeError, SchemaVersionError
from wire.topics import valid_id

SCHEMA_VERSION: Final = 1
MAX_READINGS_PER_BATCH = 5000
MAX_VALUES_PER_READING = 256
MAX_TEXT_LENGTH = 1024
MAX_MAGNITUDE = 1e15
"""Largest absolute value of a number. Every integer up to it is exact in float8 (the stores' type), and
float8 rollups can sum 10^290 such values without overflowing."""
MAX_SEQ = 2**63 - 1
"""Largest batch sequence number (PostgreSQL bigint)."""
MAX_DEVICES_PER_STATUS = 10_000


def _no_nul(text: str) -> str:
    """PostgreSQL's text cannot hold a NUL, and no field of ours needs one: refused at the wire."""
    if "\x00" in text:
        raise ValueError("text must not contain a NUL character (\\u0000)")
    return text


Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH), AfterValidator(_no_nul)]
Value = float | int | bool | Text | None
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
    def _bounded(cls, values: dict[str, Value]) -> dict[str, Value]:
        # The ignores below: type(v) is taken once (the hot path), and mypy does not narrow v through ``kind``.
        for name, v in values.items():
            kind = type(v)
            if kind is float:
                if not math.isfinite(v):  # type: ignore[arg-type]
                    raise ValueError(f"field {name!r} is not a finite number")
                if not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:  # type: ignore[operator]
                    raise ValueError(f"field {name!r}: {v!r} is out of range (|value| <= {MAX_MAGNITUDE:g})")
            elif kind is int and not -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:  # type: ignore[operator]
                raise ValueError(
                    f"field {name!r}: integer of {len(str(abs(v)))} digits is out of range "  # type: ignore[arg-type]
                    f"(|value| <= {MAX_MAGNITUDE:g})"
                )
        return values


class OriginClaim(_Frozen):
    """What the publisher says about its origin. Checked against the registry, never trusted."""

    site_id: Annotated[str, Field(max_length=64), AfterValidator(_no_nul)] | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class Batch(_Frozen):
    """A batch of readings of one device, numbered by a per-device monotonic sequence."""

    v: Literal[1] = Field(default=SCHEMA_VERSION, description="Schema version of this payload.")
    device_id: str = Field(description="Device id; must equal the device segment of the topic.")
    seq: StrictInt = Field(
        ge=0,
        le=MAX_SEQ,
        description="Per-device monotonic batch sequence number (an integer, not a boolean or a string).",
    )
    sent_at: AwareDatetime = Field(description="Time the agent published the batch.")
    origin: OriginClaim | None = Field(default=None, description="Optional origin claim, cross-checked.")
    key_id: Annotated[str, Field(max_length=128), AfterValidator(_no_nul)] | None = Field(
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
    at: AwareDatetime
    devices: list[str] = Field(default_factory=list, max_length=MAX_DEVICES_PER_STATUS)
    reason: Text | None = None

    @field_validator("gateway_id", "site_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not valid_id(value):
            raise ValueError(f"{value!r} is not a valid id")
        return value

    @field_validator("devices")
    @classmethod
    def _device_ids(cls, devices: list[str]) -> list[str]:
        for device in devices:
            if not valid_id(device):
                raise ValueError(f"device id {device!r} is not a valid id")
        return devices


def encode_batch(batch: Batch) -> bytes:
    """Serialize a batch to its compact JSON wire form."""
    return batch.model_dump_json(exclude_none=True, exclude_defaults=False).encode()


# The branches of the ``Value`` union, as pydantic names them in an error's location.
_UNION_BRANCHES = {"float", "int", "bool", "str", "none", "constrained-str"}


def _first_error(exc: ValidationError) -> DecodeError:
    """The first error, and for a value of the ``Value`` union the branch that matches its type (a text with a NUL
    is "should match pattern", not "should be a valid number")."""
    errors = exc.errors()
    err = errors[0]
    loc = list(err.get("loc", ()))
    if loc and str(loc[-1]) in _UNION_BRANCHES:
        same = [e for e in errors if list(e.get("loc", ()))[:-1] == loc[:-1]]
        err = next((e for e in same if not str(e.get("type", "")).endswith(("_type", "_parsing"))), err)
        loc = loc[:-1]
    where = ".".join(_printable(str(p)) for p in loc)
    return DecodeError(_printable(err.get("msg", "invalid")), field=where or None)


def _printable(text: str) -> str:
    """Control characters of untrusted input (a NUL in a field name) escaped: error texts are stored and logged."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def parse_json(payload: bytes | str) -> Any:
    """Untrusted JSON to Python values, or :class:`DecodeError`. pydantic's parser (jiter), not ``json.loads``:
    it bounds nesting (a payload nested 1,000 deep is an error, not a ``RecursionError``) and reports an integer
    too large to convert as an error, not a ``ValueError`` elsewhere. NaN and Infinity parse (the models refuse
    them naming the field)."""
    try:
        return from_json(payload, allow_inf_nan=True)  # NaN and Infinity: refused by the model, naming the field
    except ValueError as exc:
        raise DecodeError(f"not JSON: {_printable(str(exc))}") from None


def decode_batch(payload: bytes | str) -> Batch:
    """Parse and validate a batch; raise :class:`DecodeError` naming the first bad field."""
    try:  # fast path (the ingest's hot path): pydantic's own JSON parser, in half the time of json.loads + validate
        return Batch.model_validate_json(payload)
    except ValidationError:
        pass  # the steps below say what is wrong: not JSON, not an object, schema version, first bad field
    raw = parse_json(payload)
    if not isinstance(raw, dict):
        raise DecodeError("payload must be a JSON object")
    version = raw.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(version)
    try:
        return Batch.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc) from None


def decode_status(payload: bytes | str) -> Status:
    """Parse and validate a gateway status; raise :class:`DecodeError` naming the first bad field."""
    raw = parse_json(payload)
    if not isinstance(raw, dict):
        raise DecodeError("status must be a JSON object")
    try:
        return Status.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the batch payload (served by the API, exported in ``wire/schema``)."""
    schema = Batch.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:residency-telemetry:wire:batch:v1"
    return schema
