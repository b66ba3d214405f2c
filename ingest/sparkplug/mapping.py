"""From a Sparkplug message resolved against its session (ingest.sparkplug.sessions) to the batch the router
decides and stores like our own agent's: device from the registry, seq = the message's position in its edge
node's durable numbering, one reading per distinct metric timestamp, fields from the profile's
``sparkplug_metric`` names. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from ingest.registry import Registry, Site
from wire import Batch
from wire.sparkplug import (
    DOUBLE,
    FLOAT,
    MAX_MAGNITUDE,
    SUPPORTED,
    Metric,
    Payload,
    SparkplugError,
    SparkplugTopic,
    convert,
    datatype_name,
)

_FLOATS = (FLOAT, DOUBLE)

_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(slots=True)
class SpbParsed:
    """A Sparkplug message of a registered edge node: decoded, its origin from the registry."""

    topic: str
    payload: bytes
    where: SparkplugTopic
    decoded: Payload
    device_id: str | None  # the registry device of the node or device; None: not registered (data refused)
    site_id: str
    site: Site
    digest: bytes
    registry: Registry


def to_batch(
    parsed: SpbParsed,
    position: int,
    metrics: list[tuple[str, int, Metric]],
    fields: dict[str, str],
) -> tuple[Batch | None, dict[str, list[str]]]:
    """The batch of the declared metrics, and the metrics not stored by reason code (``undeclared_field``,
    ``spb_unsupported_type``, ``spb_bad_value``: code -> details)."""
    assert parsed.device_id is not None
    problems: dict[str, list[str]] = defaultdict(list)
    by_ts: dict[int, dict[str, object]] = {}
    fallback = parsed.decoded.timestamp
    for name, datatype, metric in metrics:
        if datatype not in SUPPORTED:
            problems["spb_unsupported_type"].append(
                f"metric {name!r}: datatype {datatype_name(datatype)} is not supported (integers, floats, booleans, "
                "strings, text, UUID and DateTime are)"
            )
            continue
        target = fields.get(name)
        if target is None:
            problems["undeclared_field"].append(name)
            continue
        raw = metric.raw
        if (
            (metric.which == "double_value" or metric.which == "float_value")
            and datatype in _FLOATS
            and (not metric.is_null and -MAX_MAGNITUDE <= raw <= MAX_MAGNITUDE)  # type: ignore[operator]  # a float
        ):
            value = raw  # hot path: a finite float in range (NaN fails the comparison)
        else:
            try:
                value = convert(datatype, metric)
            except SparkplugError as exc:
                problems[exc.code].append(exc.reason)
                continue
        ts = metric.timestamp if metric.timestamp is not None else fallback
        if ts is None:
            ts = int(datetime.now(UTC).timestamp() * 1000)  # the specification requires one; be lenient
        if not 0 <= ts <= _MAX_MS:
            problems["spb_bad_value"].append(f"metric {name!r}: timestamp {ts} ms is out of range")
            continue
        by_ts.setdefault(ts, {})[target] = value
    if not by_ts:
        return None, problems
    readings = [_Reading(datetime.fromtimestamp(ts / 1000, UTC), values) for ts, values in sorted(by_ts.items())]
    sent_ms = fallback if fallback is not None and 0 <= fallback <= _MAX_MS else max(by_ts)
    batch = _Batch(parsed.device_id, position, datetime.fromtimestamp(sent_ms / 1000, UTC), readings)
    return cast(Batch, batch), problems


@dataclass(slots=True)
class _Reading:
    """What the router reads of a :class:`wire.Reading` (hot path: pydantic's model_construct costs 15 us)."""

    ts: datetime
    values: dict[str, object]


@dataclass(slots=True)
class _Batch:
    """What the router reads of a :class:`wire.Batch`: a Sparkplug message carries no edge transform, no key id
    and no origin claim (the registry gives the origin)."""

    device_id: str
    seq: int
    sent_at: datetime
    readings: list[_Reading]
    edge_transforms: dict[str, str] = field(default_factory=dict)
    key_id: None = None
    origin: None = None
    v: int = 1
