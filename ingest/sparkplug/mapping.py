"""From a Sparkplug message resolved against its session (ingest.sparkplug.sessions) to the batch the router
decides and stores like our own agent's: device from the registry, seq = the message's position in its edge
node's durable numbering, one reading per distinct metric timestamp, fields from the profile's
``sparkplug_metric`` names. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.registry import Registry, Site
from wire import Batch, Reading
from wire.sparkplug import SUPPORTED, Metric, Payload, SparkplugError, SparkplugTopic, convert, datatype_name

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


def to_batch(parsed: SpbParsed, position: int, metrics: list[tuple[str, int, Metric]], fields: dict[str, str],
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
                "strings, text, UUID and DateTime are)")
            continue
        field = fields.get(name)
        if field is None:
            problems["undeclared_field"].append(name)
            continue
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
        by_ts.setdefault(ts, {})[field] = value
    if not by_ts:
        return None, problems
    readings = [Reading.model_construct(ts=datetime.fromtimestamp(ts / 1000, UTC), values=values)
                for ts, values in sorted(by_ts.items())]
    sent_ms = fallback if fallback is not None and 0 <= fallback <= _MAX_MS else max(by_ts)
    sent = datetime.fromtimestamp(sent_ms / 1000, UTC)
    batch = Batch.model_construct(v=1, device_id=parsed.device_id, seq=position, sent_at=sent, origin=None,
                                  key_id=None, edge_transforms={}, readings=readings)
    return batch, problems
