"""The Sparkplug workload of ``bench.ingest`` (S1): DDATA with 10 metrics per message (aliases, as edge nodes
send them after their birth) against our JSON path with the same 10 values per message (one reading of 10
fields), same devices' profile, same site, in the same run.

Devices: ``DEVICES`` Sparkplug edge nodes (one device each) and as many JSON devices, all at de-munich with the
profile ``bench_10`` (10 machine fields, each naming its Sparkplug metric), added to the demo registry. The
Sparkplug payloads are encoded with the protobuf classes of ``wire.sparkplug`` (the ingest's decoding is what is
measured); the warm-up publishes the births and the first data of every node.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from wire import Batch, Reading, encode_batch
from wire.sparkplug import sparkplug_b_pb2 as pb

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICES = 10
METRICS = 10
SITE = "de-munich"
WARMUP = 4  # data messages per device before the measured ones (after the births)
Pair = tuple[str, bytes]


def bench_registry(out: Path, base: Path = REPO_ROOT / "deploy" / "local" / "registry.yaml") -> Path:
    registry = yaml.safe_load(base.read_text(encoding="utf-8"))
    registry["profiles"]["bench_10"] = {
        "fields": {f"m{i}": {"category": "machine", "sparkplug_metric": f"Line/Metric {i}"} for i in range(METRICS)}
    }
    for d in range(DEVICES):
        registry["devices"][f"bench-json-{d:02}"] = {"site": SITE, "profile": "bench_10"}
        registry["devices"][f"bench-spb-{d:02}"] = {
            "site": SITE,
            "profile": "bench_10",
            "sparkplug": {"group": "bench", "edge_node": f"node-{d:02}", "device": "dev"},
        }
    out.write_text(yaml.safe_dump(registry, sort_keys=False), encoding="utf-8")
    return out


def _values(n: int, d: int) -> list[float]:
    return [round(100.0 + d + 0.01 * ((n * 7 + i * 13) % 1000), 2) for i in range(METRICS)]


def json_messages(per_device: int) -> tuple[list[Pair], list[Pair]]:
    """(warm-up, measured) JSON batches: one reading of the 10 fields each, seq 1, 2, ... per device."""
    start = datetime.now(UTC) - timedelta(seconds=per_device + 60)
    warm: list[Pair] = []
    measured: list[Pair] = []
    for n in range(WARMUP + per_device):
        for d in range(DEVICES):
            device = f"bench-json-{d:02}"
            ts = start + timedelta(seconds=n)
            batch = Batch(
                device_id=device,
                seq=n + 1,
                sent_at=ts,
                readings=[Reading(ts=ts, values={f"m{i}": v for i, v in enumerate(_values(n, d))})],
            )
            (warm if n < WARMUP else measured).append((f"tele/v1/{SITE}/{device}", encode_batch(batch)))
    return warm, measured


def _payload(seq: int, ts_ms: int, metrics: list[tuple[str | None, int | None, float]]) -> bytes:
    p = pb.Payload(timestamp=ts_ms, seq=seq % 256)
    for name, alias, value in metrics:
        m = p.metrics.add(datatype=10)
        if name is not None:
            m.name = name
        if alias is not None:
            m.alias = alias
        m.double_value = value
    return p.SerializeToString()


def sparkplug_messages(per_device: int) -> tuple[list[Pair], list[Pair]]:
    """(warm-up: NBIRTH, DBIRTH and the first DDATA of every node; measured: DDATA of 10 aliased metrics each)."""
    start_ms = int(time.time() * 1000) - (per_device + 60) * 1000
    warm: list[Pair] = []
    measured: list[Pair] = []
    for d in range(DEVICES):
        node = f"node-{d:02}"
        birth = pb.Payload(timestamp=start_ms - 1000, seq=0)
        birth.metrics.add(name="bdSeq", datatype=8, long_value=0)
        warm.append((f"spBv1.0/bench/NBIRTH/{node}", birth.SerializeToString()))
        warm.append(
            (
                f"spBv1.0/bench/DBIRTH/{node}/dev",
                _payload(1, start_ms - 999, [(f"Line/Metric {i}", i, v) for i, v in enumerate(_values(0, d))]),
            )
        )
    for n in range(WARMUP + per_device):
        for d in range(DEVICES):
            payload = _payload(2 + n, start_ms + n * 1000, [(None, i, v) for i, v in enumerate(_values(n, d))])
            (warm if n < WARMUP else measured).append((f"spBv1.0/bench/DDATA/node-{d:02}/dev", payload))
    return warm, measured
