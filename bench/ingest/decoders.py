"""``python -m bench.ingest.decoders``: the wire decoder (pydantic) against msgspec on the benchmark's payloads.

Issue 17 asked whether a faster validated decoder pays. Three ways to turn a payload into a batch, each timed
on the workload's 1-reading and 100-reading messages (best of three rounds, one thread, µs per message):

- ``pydantic``: ``wire.decode_batch`` as the ingest runs it (``Batch.model_validate_json``: one pass in Rust);
- ``msgspec+models``: ``msgspec`` decoding into Structs with the same constraints (patterns, lengths, bounds), the
  checks msgspec cannot express done in Python (finite numbers, magnitude, NUL), then the ingest's pydantic models
  built without validation (``model_construct``): what switching the decoder alone would cost;
- ``msgspec only``: the Structs alone, the floor if the whole pipeline used msgspec types instead of pydantic's.

The outputs of the first two are checked equal. msgspec is a dev dependency for this measurement only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from bench.ingest.workload import Workload
from wire.envelope import (
    MAX_MAGNITUDE,
    MAX_READINGS_PER_BATCH,
    MAX_SEQ,
    MAX_VALUES_PER_READING,
    Batch,
    OriginClaim,
    Reading,
    decode_batch,
)

_Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
_Values = Annotated[
    dict[_Name, float | int | bool | str | None], msgspec.Meta(min_length=1, max_length=MAX_VALUES_PER_READING)
]


class _Reading(msgspec.Struct, forbid_unknown_fields=True):
    ts: datetime
    values: _Values


class _Origin(msgspec.Struct, forbid_unknown_fields=True):
    site_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    device_id: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    sent_at: datetime
    readings: Annotated[list[_Reading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_BATCH)]
    v: Literal[1] = 1
    origin: _Origin | None = None
    key_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    edge_transforms: dict[_Name, Literal["pseudonymized"]] = {}


_DECODER = msgspec.json.Decoder(_Batch)


def msgspec_models(payload: bytes) -> Batch:
    """msgspec, the remaining checks in Python, then the ingest's models without validation."""
    b = _DECODER.decode(payload)
    readings = []
    for r in b.readings:
        if r.ts.tzinfo is None:
            raise ValueError("ts: timezone required")
        # The ignores below: mypy does not narrow v through ``kind`` (type(v) taken once, as in wire.envelope).
        for name, v in r.values.items():
            kind = type(v)
            if kind is float and not (math.isfinite(v) and -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE):  # type: ignore[operator, arg-type]
                raise ValueError(f"field {name!r} out of range")
            if kind is str and "\x00" in v:  # type: ignore[operator]
                raise ValueError(f"field {name!r}: NUL")
        readings.append(Reading.model_construct(ts=r.ts, values=r.values))
    o = b.origin
    origin = OriginClaim.model_construct(site_id=o.site_id, country=o.country) if o else None
    return Batch.model_construct(
        v=1,
        device_id=b.device_id,
        seq=b.seq,
        sent_at=b.sent_at,
        origin=origin,
        key_id=b.key_id,
        edge_transforms=b.edge_transforms,
        readings=readings,
    )


def _best_us(decode: Callable[[bytes], Any], payloads: Sequence[bytes], rounds: int = 3) -> float:
    best = math.inf
    for _ in range(rounds):
        t = time.perf_counter()
        for p in payloads:
            decode(p)
        best = min(best, (time.perf_counter() - t) / len(payloads) * 1e6)
    return best


def main() -> None:
    workload = Workload(readings_per_device=3000)
    sets = {
        "1": [m.payload for m in workload.messages(12_000, 1)],
        "100": [m.payload for m in workload.messages(120, 100)],
    }
    decoders: dict[str, Callable[[bytes], Any]] = {
        "pydantic": decode_batch,
        "msgspec+models": msgspec_models,
        "msgspec only": _DECODER.decode,
    }
    for label, payloads in sets.items():
        for p in payloads[:50]:
            if msgspec_models(p) != decode_batch(p):
                raise SystemExit(f"msgspec+models decoded a {label}-reading payload differently")
        base = _best_us(decode_batch, payloads)
        for name, decode in decoders.items():
            us = base if decode is decode_batch else _best_us(decode, payloads)
            print(f"{label:>3} reading(s)/msg  {name:<15} {us:8.1f} us/msg  x{base / us:.2f} vs pydantic")


if __name__ == "__main__":
    main()
