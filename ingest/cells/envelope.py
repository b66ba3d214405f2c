"""A *part*: the rows of one message for one region of another cell, already split and transformed, with the
decisions that allowed them (docs/cells.md, "The transfer"). JSON on the wire, ``v: 1``.

A part is built from the rows the router made for that region (the same rows a local region would get), so
the receiving cell stores byte-identical rows under the same reading keys: exactly once holds across cells.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ingest.records import Row
from wire.envelope import (
    MAX_MAGNITUDE,
    MAX_READINGS_PER_BATCH,
    MAX_SEQ,
    MAX_VALUES_PER_READING,
    FieldName,
    Text,
    parse_json,
)
from wire.errors import DecodeError

PART_VERSION: Final = 1
XFER_PREFIX = "xfer/v1"
XACK_PREFIX = "xack/v1"
_PART_NS = uuid.UUID("1d0f3c0e-7a51-4c4e-9a0b-6b1f0c7e2a55")


class PartRow(NamedTuple):
    """One stored value a part carries: where in the batch (idx), which field, when, its category, and the value
    as the decision allowed it."""

    idx: int
    name: str
    ts: datetime
    category: str
    num: float | None
    txt: str | None
    transform: str | None


# The wire's bounds hold for parts too (a peer is trusted to send only what its policy allowed, not to be
# unable to err): finite bounded numbers, texts without NUL, bigint sequence numbers.
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
# One value of a reading: [name, category, num, txt, transform]; validated by pydantic-core (tuples, not a model
# per value: a part of a 100-reading message holds hundreds).
PartValue = tuple[FieldName, Text, Number | None, Text | None, Text | None]
# One reading: [idx, ts, [values...]] (its timestamp written once).
PartReading = tuple[
    Annotated[int, Field(ge=0, lt=MAX_READINGS_PER_BATCH)],
    AwareDatetime,
    Annotated[list[PartValue], Field(min_length=1, max_length=MAX_VALUES_PER_READING)],
]


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    v: Literal[1] = PART_VERSION
    part_id: uuid.UUID
    from_cell: Text
    to_cell: Text
    region: Text
    site_id: Text
    device_id: Text
    seq: int = Field(ge=0, le=MAX_SEQ)
    origin_country: str = Field(pattern=r"^[A-Z]{2}$")
    policy_revision: Text
    decisions: dict[Text, uuid.UUID] = Field(description="category -> the sending cell's decision id")
    readings: list[PartReading] = Field(
        min_length=1,
        max_length=MAX_READINGS_PER_BATCH,
        alias="rows",
        description="per reading [idx, ts, [[name, category, num, txt, transform], ...]] (JSON key: rows)",
    )

    @property
    def rows(self) -> list[PartRow]:
        return [
            PartRow(idx, name, ts, category, num, txt, transform)
            for idx, ts, values in self.readings
            for name, category, num, txt, transform in values
        ]


def part_id(device_id: str, seq: int, region: str, revision: str) -> uuid.UUID:
    """Deterministic: the same message's part for the same region under the same policy is the same part."""
    return uuid.uuid5(_PART_NS, f"{device_id}/{seq}/{region}/{revision}")


def part_body(rows: Sequence[Row], *, from_cell: str, to_cell: str, region: str) -> tuple[uuid.UUID, bytes]:
    """The part carrying ``rows`` (one message's rows for ``region``), encoded: (part id, JSON). Built straight
    from the router's rows (already validated), without a model per value: the sending cell's hot path."""
    # The rows are the writers' generic tuples of objects; the ignores below rely on the layout above.
    first = rows[0]
    device_id, seq, site_id, origin, revision = (
        first.device_id,
        first.seq,
        first.site_id,
        first.origin_country,
        first.policy_revision,
    )
    pid = part_id(device_id, seq, region, revision)
    readings: dict[int, tuple[datetime, list[tuple[object, ...]]]] = {}
    decisions: dict[str, uuid.UUID] = {}
    for r in rows:
        reading = readings.get(r.idx)
        if reading is None:
            reading = readings[r.idx] = (r.ts, [])
        reading[1].append((r.name, r.category, r.num, r.txt, r.transform))
        decisions[r.category] = r.decision_id
    body = {
        "v": PART_VERSION,
        "part_id": pid,
        "from_cell": from_cell,
        "to_cell": to_cell,
        "region": region,
        "site_id": site_id,
        "device_id": device_id,
        "seq": seq,
        "origin_country": origin,
        "policy_revision": revision,
        "decisions": decisions,
        "rows": [(idx, ts, values) for idx, (ts, values) in readings.items()],
    }
    return pid, to_json(body)


def part_of(rows: Sequence[Row], *, from_cell: str, to_cell: str, region: str) -> Part:
    """The part carrying ``rows``, as a model (tests, tools)."""
    return decode_part(part_body(rows, from_cell=from_cell, to_cell=to_cell, region=region)[1])


def rows_of(part: Part, rows: Sequence[PartRow] | None = None) -> list[Row]:
    """The region rows a part carries, as the sending cell made them (same keys, decision ids, revision);
    ``rows``: ``part.rows`` when the caller has them already."""
    device_id, seq, site_id, origin, decisions, revision = (
        part.device_id,
        part.seq,
        part.site_id,
        part.origin_country,
        part.decisions,
        part.policy_revision,
    )
    return [
        Row(
            device_id,
            seq,
            r.idx,
            r.name,
            r.ts,
            site_id,
            origin,
            r.category,
            r.num,
            r.txt,
            r.transform,
            decisions[r.category],
            revision,
        )
        for r in (rows if rows is not None else part.rows)
    ]


def encode_part(part: Part) -> bytes:
    return part.model_dump_json(by_alias=True).encode()


def decode_part(payload: bytes) -> Part:
    """Parse and validate a part; DecodeError names the first bad field."""
    try:
        part = Part.model_validate_json(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err.get("type") == "json_invalid":
            parse_json(payload)  # raises DecodeError with the parser's message
        raise DecodeError(
            str(err.get("msg", "invalid")), field=".".join(str(p) for p in err.get("loc", ())) or None
        ) from None
    missing = sorted({category for _, _, values in part.readings for _, category, *_ in values} - set(part.decisions))
    if missing:
        raise DecodeError(f"rows of categories {missing} carry no decision", field="decisions")
    return part


def xfer_topic(to_cell: str, from_cell: str, device_id: str) -> str:
    return f"{XFER_PREFIX}/{to_cell}/{from_cell}/{device_id}"


def xack_topic(to_cell: str, from_cell: str) -> str:
    """Receipts for parts ``to_cell`` sent, published by ``from_cell`` (the cell that received them)."""
    return f"{XACK_PREFIX}/{to_cell}/{from_cell}/receipts"


def parse_xfer_topic(topic: str) -> tuple[str, str, str] | None:
    """(to_cell, from_cell, device_id) of a transfer topic, or None."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != XFER_PREFIX:
        return None
    return parts[2], parts[3], parts[4]


class Receipt(BaseModel):
    """Parts a cell committed (stored, or refused and quarantined): the sender drops them from its outbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PART_VERSION
    parts: list[uuid.UUID] = Field(max_length=100_000)
    at: datetime


def decode_receipt(payload: bytes) -> Receipt:
    try:
        return Receipt.model_validate(parse_json(payload))
    except ValidationError as exc:
        raise DecodeError(str(exc.errors()[0].get("msg", "invalid")), field="receipt") from None
