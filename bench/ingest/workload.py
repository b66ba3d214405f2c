"""One workload: the demo registry's devices, simulated machine readings, pre-encoded payloads.

Readings come from ``edge_agent.sources.simulated`` (the edge agent's own simulated machines, with the
same operator rota as the local demo), driven by a fake clock so that any number of samples can be
taken at once. Payloads are encoded with ``wire.encode_batch`` and carry the origin claim, exactly as
``edge_agent.agent`` publishes them. The rows the ingest would write are produced by calling the real
``ingest.pipeline.router.Router.route`` on those payloads, so the baselines load identical rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.sources.simulated import SimulatedSettings, SimulatedSource
from ingest.cells.receive import CellContext
from ingest.pipeline.router import Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.registry import Registry, load_registry
from ingest.store.region import COLUMNS
from policy import load_engine
from wire import Batch, DataTopic, OriginClaim, Reading, encode_batch

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
SAMPLE_INTERVAL_MS = 100
# Operators per machine kind, as devstack/agents.py gives the demo's agents.
_OPERATORS = {"cnc_mill": 2, "injection_press": 3, "compressor": 1}
# Per-device sequence numbers: the warm-up messages come first (1..4), the measured ones follow, so the
# ingest's sequence tracking sees an ordinary, gap-free stream (a warm-up far ahead of the measured seqs
# would open a huge gap that every measured message then "fills": not the normal path).
WARMUP_PER_DEVICE = 4
MEASURED_SEQ_BASE = WARMUP_PER_DEVICE + 1
LATENCY_SEQ_BASE = MEASURED_SEQ_BASE


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    device_id: str
    seq: int
    readings: int


@dataclass
class DeviceInfo:
    device_id: str
    site_id: str
    country: str
    topic: str
    readings: list[Reading] = field(default_factory=list)


def make_router(registry: Registry, cell: CellContext | None = None) -> Router:
    """The router as the service builds it (embedded Rego policy behind the decision cache); ``cell``: as the
    ingest of that residency cell builds it."""
    return Router(
        registry=registry,
        policy=load_engine("embedded", cache_size=10_000),
        pseudonymizer=Pseudonymizer(b"dev-only-change-me"),
        max_bytes=1_048_576,
        cell=cell,
    )


@dataclass
class _Clock:
    """A simulated source's monotonic clock, advanced by hand."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class Workload:
    """Simulated readings of every registered device; payloads are cut from them on demand."""

    def __init__(self, registry_file: Path = REGISTRY_FILE, readings_per_device: int = 1000, seed: int = 0) -> None:
        self.registry_file = registry_file
        self.registry = load_registry(registry_file)
        self.devices: list[DeviceInfo] = []
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(
            milliseconds=SAMPLE_INTERVAL_MS * readings_per_device + 60_000
        )
        for n, (device_id, device) in enumerate(sorted(self.registry.devices.items())):
            site = self.registry.sites[device.site]
            prefix = device.site.split("-")[0].upper()
            operators = [f"{prefix}-B{1000 + 10 * n + k}" for k in range(_OPERATORS.get(device.profile, 2))]
            clock = _Clock()
            source = SimulatedSource(
                SimulatedSettings(
                    type="simulated",
                    device_id=device_id,
                    machine=device.profile,
                    interval_ms=SAMPLE_INTERVAL_MS,
                    seed=seed + n,
                    operators=operators,
                ),
                clock=clock,
                wall_clock=lambda: start,
            )
            source.start()
            info = DeviceInfo(device_id, device.site, site.country, str(DataTopic(device.site, device_id)))
            while len(info.readings) < readings_per_device:
                # read() returns every sample due since the last call (at most 10,000 at once)
                clock.now += min(readings_per_device - len(info.readings), 5000) * SAMPLE_INTERVAL_MS / 1000
                info.readings.extend(source.read())
            del info.readings[readings_per_device:]
            self.devices.append(info)

    def _batch(self, dev: DeviceInfo, seq: int, readings: Sequence[Reading], sent_at: datetime) -> bytes:
        batch = Batch(
            device_id=dev.device_id,
            seq=seq,
            sent_at=sent_at,
            origin=OriginClaim(site_id=dev.site_id, country=dev.country),
            readings=list(readings),
        )
        return encode_batch(batch)

    def of_site(self, site_id: str) -> list[DeviceInfo]:
        """The devices of one site (e.g. the CN site whose data the two-cell phases send over the link)."""
        found = [d for d in self.devices if d.site_id == site_id]
        if not found:
            raise ValueError(f"site {site_id!r} has no device in {self.registry_file}")
        return found

    def messages(
        self,
        count: int,
        per_message: int,
        seq_base: int = MEASURED_SEQ_BASE,
        devices: Sequence[DeviceInfo] | None = None,
    ) -> list[Message]:
        """``count`` messages of ``per_message`` readings, round-robin over the devices (every device, or
        ``devices``), per-device seq."""
        devs = list(devices) if devices is not None else self.devices
        sent_at = datetime.now(UTC)
        out: list[Message] = []
        offsets = [0] * len(devs)
        for k in range(count):
            d = k % len(devs)
            dev = devs[d]
            start = offsets[d] % max(1, len(dev.readings) - per_message + 1)
            chunk = dev.readings[start : start + per_message]
            offsets[d] += per_message
            seq = seq_base + k // len(devs)
            out.append(Message(dev.topic, self._batch(dev, seq, chunk, sent_at), dev.device_id, seq, len(chunk)))
        return out

    def warmup(self, devices: Sequence[DeviceInfo] | None = None) -> list[Message]:
        """Seqs 1..4 of every device (or of ``devices``), one reading each: policy cache, connections, first gaps
        checked."""
        devs = list(devices) if devices is not None else self.devices
        return self.messages(len(devs) * WARMUP_PER_DEVICE, 1, seq_base=1, devices=devs)

    def readings_per_device(self) -> int:
        return min(len(d.readings) for d in self.devices)


# --- the timestamped form used by the latency phase -----------------------------------------------

SENTINEL = datetime(2000, 1, 1, tzinfo=UTC)


def sentinel_text() -> bytes:
    """How ``encode_batch`` writes the sentinel datetime, so it can be replaced at publish time."""
    probe = Batch(device_id="x", seq=0, sent_at=SENTINEL, readings=[Reading(ts=SENTINEL, values={"a": 1})])
    text = encode_batch(probe)
    marker = text.split(b'"sent_at":"')[1].split(b'"')[0]
    return marker


def timestamped_templates(
    workload: Workload, count: int, per_message: int, seq_base: int, devices: Sequence[DeviceInfo] | None = None
) -> list[Message]:
    """Messages whose ``sent_at`` and every reading's ``ts`` are the sentinel (replaced when published), round-robin
    over every device of the workload (or ``devices``)."""
    devs = list(devices) if devices is not None else workload.devices
    out: list[Message] = []
    for k in range(count):
        dev = devs[k % len(devs)]
        start = (k // len(devs)) * per_message % max(1, len(dev.readings) - per_message + 1)
        chunk = [Reading(ts=SENTINEL, values=r.values) for r in dev.readings[start : start + per_message]]
        seq = seq_base + k // len(devs)
        out.append(Message(dev.topic, workload._batch(dev, seq, chunk, SENTINEL), dev.device_id, seq, len(chunk)))
    return out


# --- rows -------------------------------------------------------------------------------------------


def route_rows(router: Router, messages: Iterable[Message]) -> dict[str, list[tuple[object, ...]]]:
    """Region -> rows, exactly as the ingest's router produces them for these payloads."""
    per_region: dict[str, list[tuple[object, ...]]] = {}
    for m in messages:
        routed = router.route(m.topic, m.payload)
        if routed.rejections:
            raise RuntimeError(f"workload message {m.topic} seq {m.seq} rejected: {routed.rejections[0]}")
        for region, rows in routed.rows.items():
            per_region.setdefault(region, []).extend(rows)
    return per_region


def route_each(router: Router, messages: Iterable[Message]) -> list[dict[str, list[tuple[object, ...]]]]:
    """Per message: region -> rows (B_raw publishes each message's rows of each region)."""
    return [route_rows(router, [m]) for m in messages]


def merge_rows(parts: Iterable[dict[str, list[tuple[object, ...]]]]) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for part in parts:
        for region, rows in part.items():
            out.setdefault(region, []).extend(rows)
    return out


COPY_COLUMNS = ", ".join(COLUMNS)
