"""A *part*: the rows of one message for one region of another cell, already split and transformed, with the
decisions that allowed them (docs/cells.md, "The transfer"). JSON on the wire, ``v: 1``.

A part is built from the rows the router made for that region (the same rows a local region would get), so
the receiving cell stores byte-identical rows under the same reading keys: exactly once holds across cells.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from wire.envelope import MAX_READINGS_PER_BATCH, MAX_VALUES_PER_READING, parse_json
from wire.errors import DecodeError

PART_VERSION = 1
XFER_PREFIX = "xfer/v1"
XACK_PREFIX = "xack/v1"
_PART_NS = uuid.UUID("1d0f3c0e-7a51-4c4e-9a0b-6b1f0c7e2a55")
MAX_ROWS = MAX_READINGS_PER_BATCH * MAX_VALUES_PER_READING


class PartRow(BaseModel):
    """One stored value: where in the batch (idx), which field, when, its category, and the value as allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idx: int = Field(ge=0, lt=MAX_READINGS_PER_BATCH)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    ts: AwareDatetime
    category: str
    num: float | None = None
    txt: str | None = Field(default=None, max_length=1024)
    transform: str | None = None


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PART_VERSION
    part_id: uuid.UUID
    from_cell: str
    to_cell: str
    region: str
    site_id: str
    device_id: str
    seq: int = Field(ge=0)
    origin_country: str = Field(pattern=r"^[A-Z]{2}$")
    policy_revision: str
    decisions: dict[str, uuid.UUID] = Field(description="category -> the sending cell's decision id")
    rows: list[PartRow] = Field(min_length=1, max_length=MAX_ROWS)


def part_id(device_id: str, seq: int, region: str, revision: str) -> uuid.UUID:
    """Deterministic: the same message's part for the same region under the same policy is the same part."""
    return uuid.uuid5(_PART_NS, f"{device_id}/{seq}/{region}/{revision}")


# Row layout of region tables (ingest.store.region.COLUMNS):
# device_id, seq, idx, name, ts, site_id, origin_country, category, num, txt, transform, decision_id, revision
def part_of(rows: Sequence[tuple[object, ...]], *, from_cell: str, to_cell: str, region: str) -> Part:
    """The part carrying ``rows`` (one message's rows for ``region``)."""
    first = rows[0]
    device_id, seq, site_id, origin, revision = first[0], first[1], first[5], first[6], first[12]
    return Part(
        part_id=part_id(str(device_id), int(seq), region, str(revision)),  # type: ignore[call-overload]
        from_cell=from_cell, to_cell=to_cell, region=region, site_id=str(site_id), device_id=str(device_id),
        seq=int(seq), origin_country=str(origin), policy_revision=str(revision),  # type: ignore[call-overload]
        decisions={str(r[7]): r[11] for r in rows},  # type: ignore[misc]
        rows=[PartRow(idx=r[2], name=r[3], ts=r[4], category=r[7], num=r[8], txt=r[9], transform=r[10])  # type: ignore[arg-type]
              for r in rows],
    )


def rows_of(part: Part) -> list[tuple[object, ...]]:
    """The region rows a part carries, as the sending cell made them (same keys, decision ids, revision)."""
    return [(part.device_id, part.seq, r.idx, r.name, r.ts, part.site_id, part.origin_country, r.category, r.num,
             r.txt, r.transform, part.decisions[r.category], part.policy_revision) for r in part.rows]


def encode_part(part: Part) -> bytes:
    return part.model_dump_json().encode()


def decode_part(payload: bytes) -> Part:
    """Parse and validate a part; DecodeError names the first bad field."""
    raw = parse_json(payload)
    if not isinstance(raw, dict):
        raise DecodeError("part must be a JSON object")
    try:
        part = Part.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DecodeError(str(err.get("msg", "invalid")),
                          field=".".join(str(p) for p in err.get("loc", ())) or None) from None
    missing = sorted({r.category for r in part.rows} - set(part.decisions))
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
