"""The benchmark's workload: the demo registry's devices publishing pre-encoded batches, and the two policies.

Every device of the registry publishes ``batches`` batches (seq 1..batches) of ``readings`` readings; a reading
holds every field of the device's profile, so each batch carries machine and personal data and the router
decides one flow per category and candidate region (home, analytics), as in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.pipeline.router import policy_flow
from ingest.registry import Registry
from policy import Flow
from wire import Batch, DataTopic, Reading, encode_batch

ALLOW_ALL_REGO = """# METADATA
# title: Allow-all benchmark policy
# description: The baseline of bench.policy. Allows every flow, demands nothing.
package residency

decision := {
\t"allow": true,
\t"localization": "none",
\t"requires": [],
\t"transforms": {},
\t"reasons": ["allow-all benchmark policy"],
\t"policy_revision": data.residency_meta.revision,
}
"""


def write_no_invariants(target: Path) -> Path:
    """An empty platform-invariants file (INGEST_POLICY_INVARIANTS_FILE): the allow-all baseline of the
    benchmark breaks every residency invariant, and a replica refuses to start on such a policy."""
    target.write_text("invariants: []\n")
    return target


def write_allow_all(target: Path) -> Path:
    """A policy directory (rego/ and data/) whose decision allows everything."""
    (target / "rego" / "residency").mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(parents=True, exist_ok=True)
    (target / "rego" / "residency" / "decision.rego").write_text(ALLOW_ALL_REGO)
    (target / "data" / "vocabulary.json").write_text('{"_about": "allow-all benchmark policy"}\n')
    return target


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    readings: int


def _value(name: str, i: int) -> float | int | str:
    if name == "operator_badge":
        return f"badge-{i % 17:04d}"
    if name == "fault_code":
        return 0
    return round(10.0 + (i % 97) * 0.37, 2)


def messages(registry: Registry, *, batches: int, readings: int) -> list[Message]:
    """Pre-encoded batches, interleaved across devices (device order kept: seq 1, 2, ... per device)."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    per_device: list[list[Message]] = []
    for device_id, device in sorted(registry.devices.items()):
        fields = sorted(registry.profiles[device.profile].fields)
        topic = str(DataTopic(device.site, device_id))
        out = []
        for seq in range(1, batches + 1):
            rows = [
                Reading(
                    ts=start + timedelta(milliseconds=seq * readings + r),
                    values={f: _value(f, seq * readings + r) for f in fields},
                )
                for r in range(readings)
            ]
            batch = Batch(device_id=device_id, seq=seq, sent_at=start + timedelta(seconds=seq), readings=rows)
            out.append(Message(topic, encode_batch(batch), readings))
        per_device.append(out)
    return [m for group in zip(*per_device, strict=True) for m in group]


def demo_flows(registry: Registry) -> list[Flow]:
    """The distinct flows the router asks for the demo registry (site x category x candidate region)."""
    flows: list[Flow] = []
    for _, site in sorted(registry.sites.items()):
        categories = sorted(
            {
                spec.category
                for device in registry.devices.values()
                if registry.sites[device.site] is site
                for spec in registry.profiles[device.profile].fields.values()
            }
        )
        for category in categories:
            flows.extend(
                policy_flow(registry, site, region_name, category) for region_name in registry.candidate_regions(site)
            )
    return flows
