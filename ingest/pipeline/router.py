"""From one MQTT message to rows per region, decision records and rejections. Pure: no I/O.

Python gathers the policy input and applies the output; the policy (Rego) decides. For each
category present in a batch and each candidate region (the site's home region, then the analytics
region) one flow is decided. Rows go to every region whose decision allows them, transformed as the
decision demands. A category that no region may hold is discarded: only metadata is kept.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.pipeline import transforms
from ingest.pipeline.transforms import Pseudonymizer
from ingest.registry import Registry, Site
from ingest.volumes.subjects import subjects_of
from ingest.volumes.tracker import VolumeTracker
from policy import Decision, Flow, PolicyEngine
from wire import Batch, DataTopic, DecodeError, TopicError, decode_batch

_DECISION_NS = uuid.UUID("6f1c7f7e-3c38-4bb5-9f0e-2f5a5a1d6c11")

# Row layout of region tables (order of ingest.store.region.COLUMNS).
Row = tuple[str, int, int, str, datetime, str, str, str, float | None, str | None, str | None, uuid.UUID, str]


@dataclass(frozen=True)
class RejectionRecord:
    """A quarantined message or part: always its metadata; its payload only where it may lawfully live."""

    topic: str
    code: str
    detail: str
    payload_bytes: int
    device_id: str | None = None
    seq: int | None = None
    quarantine_id: uuid.UUID | None = None
    origin_country: str | None = None
    category: str | None = None
    payload_region: str | None = None  # None: metadata only, the payload is discarded
    payload: bytes | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        return "held" if self.payload_region is not None else "discarded"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x (hot path, several per message)
class DecisionRecord:
    decision_id: uuid.UUID
    device_id: str
    seq: int
    site_id: str
    origin_country: str
    category: str
    region: str
    destination_country: str
    outcome: str  # stored | transformed | denied
    decision: Decision
    readings: int
    input: dict[str, Any]


@dataclass
class Routed:
    """Everything one message produces; committed together, then the message is acknowledged."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    decisions: list[DecisionRecord] = field(default_factory=list)
    rejections: list[RejectionRecord] = field(default_factory=list)
    device_id: str | None = None
    seq: int | None = None
    readings: int = 0

    @property
    def stored(self) -> bool:
        return self.device_id is not None


_DECISION_NS_BYTES = _DECISION_NS.bytes


def decision_id(device_id: str, seq: int, category: str, region: str, revision: str) -> uuid.UUID:
    """Deterministic, so a redelivered message logs the same decision once (per policy revision).

    ``uuid.uuid5`` spelled out (the same value, in 60 % of the time: several per message on the hot path)."""
    name = f"{device_id}/{seq}/{category}/{region}/{revision}".encode()
    return uuid.UUID(bytes=hashlib.sha1(_DECISION_NS_BYTES + name).digest()[:16], version=5)


def quarantine_id(topic: str, payload: bytes, code: str, category: str | None) -> uuid.UUID:
    """Deterministic, so a redelivered message is quarantined once."""
    digest = hashlib.sha256(payload).hexdigest()
    return uuid.uuid5(_DECISION_NS, f"q/{code}/{category}/{topic}/{digest}")


_GZIP_MAGIC = b"\x1f\x8b"

# Content we cannot classify (unparseable payloads, undeclared fields) is treated as possibly holding
# these categories, on top of those the device's profile declares: the cautious side.
_UNCLASSIFIED = ("personal", "sensitive_personal")
_PERSONAL = frozenset(_UNCLASSIFIED)


def policy_flow(registry: Registry, site: Site, region_name: str, category: str, *,
                edge_pseudonymized: bool = False) -> Flow:
    """The policy input for ``category`` data of ``site`` stored in region ``region_name``: what the registry
    says of the origin, the destination and the recipient."""
    region = registry.regions[region_name]
    return Flow.model_validate({
        "origin": site.country,
        "destination": region.country,
        "category": category,
        "safeguards": list(site.safeguards.get(region.country, [])),
        "recipient": dict(region.recipient),
        "entity": site.entity.model_dump(),
        "purpose": site.purpose,
        "volume": site.volume.model_dump(),
        "transforms_applied": ["pseudonymized"] if edge_pseudonymized else [],
    })


class Router:
    def __init__(
        self, *, registry: Registry, policy: PolicyEngine, pseudonymizer: Pseudonymizer, max_bytes: int,
        volumes: VolumeTracker | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.pseudonymizer = pseudonymizer
        self.max_bytes = max_bytes
        self.volumes = volumes  # measured transfer volumes (ingest.volumes); None: the registry's figures only
        self._flows: dict[tuple[int, str, str, bool], Flow] = {}
        self._inputs: dict[int, dict[str, Any]] = {}  # keyed by id() of a memoized (never freed) flow
        self._registry_lock = threading.Lock()  # a message is routed against one registry, never two

    def replace_registry(self, registry: Registry) -> None:
        """Route the next message with ``registry`` (a change made through the API, ingest.registry_sync).
        The memoised flows were built from the old site definitions (keyed by ``id(site)``, which a new site
        may reuse once the old one is freed): they are dropped, between two messages (the lock)."""
        with self._registry_lock:
            self.registry = registry
            self._flows = {}
            self._inputs = {}

    def route(self, topic: str, payload: bytes) -> Routed:
        with self._registry_lock:
            return self._route(topic, payload)

    def _route(self, topic: str, payload: bytes) -> Routed:
        size = len(payload)

        def reject(code: str, detail: str, device: str | None = None, seq: int | None = None, *,
                   hold: bool = False) -> Routed:
            return Routed(rejections=[self._quarantine(topic, payload, code, detail, device, seq, hold=hold)])

        if size > self.max_bytes:
            return reject("oversized", f"payload of {size} bytes exceeds the limit of {self.max_bytes} bytes")
        try:
            parsed_topic = DataTopic.parse(topic)
        except TopicError as exc:
            return reject("bad_topic", str(exc))
        try:
            batch = decode_batch(self._inflate(payload))
        except DecodeError as exc:
            return reject("malformed", str(exc), parsed_topic.device_id, hold=True)
        if batch.device_id != parsed_topic.device_id:
            return reject(
                "topic_mismatch",
                f"payload device_id {batch.device_id!r} differs from topic device {parsed_topic.device_id!r}",
                parsed_topic.device_id, batch.seq,
            )
        found = self.registry.site_of(batch.device_id)
        if found is None:
            return reject("unknown_device", f"device {batch.device_id!r} is not in the registry",
                          batch.device_id, batch.seq)
        site_id, site = found
        if parsed_topic.site_id != site_id:
            return reject(
                "site_mismatch",
                f"device {batch.device_id!r} belongs to site {site_id!r}, published under site "
                f"{parsed_topic.site_id!r}",
                batch.device_id, batch.seq,
            )
        claim = batch.origin
        if claim is not None and (
            (claim.site_id is not None and claim.site_id != site_id)
            or (claim.country is not None and claim.country != site.country)
        ):
            return reject(
                "origin_mismatch",
                f"payload claims origin site={claim.site_id!r} country={claim.country!r}; registry says "
                f"site={site_id!r} country={site.country!r}",
                batch.device_id, batch.seq,
            )
        return self._route_batch(topic, payload, batch, site_id, site)

    def _inflate(self, payload: bytes) -> bytes:
        """Gzip payloads (the edge agent's optional compression, content type application/json+gzip) are
        recognised by their magic bytes and inflated, at most to the size limit (no decompression bombs)."""
        if not payload.startswith(_GZIP_MAGIC):
            return payload
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(payload, self.max_bytes + 1)
        except zlib.error as exc:
            raise DecodeError(f"invalid gzip payload: {exc}") from None
        if len(data) > self.max_bytes or inflater.unconsumed_tail:
            raise DecodeError(f"gzip payload inflates beyond the limit of {self.max_bytes} bytes")
        return data

    def _quarantine(
        self, topic: str, payload: bytes, code: str, detail: str, device_id: str | None, seq: int | None, *,
        hold: bool, categories: tuple[str, ...] | None = None,
    ) -> RejectionRecord:
        """A rejection whose payload is held in the first region where every category it may contain is
        allowed to live (the site's home region first); metadata only where there is none, where the
        origin is unknown or disputed (unknown device, spoofing), or where the payload is oversized."""
        site = self.registry.site_of(device_id) if device_id else None
        origin = site[1].country if site else None
        region: str | None = None
        kinds: tuple[str, ...] = ()
        if hold and site is not None and device_id is not None:
            kinds = categories or tuple(sorted(
                {f.category for f in self.registry.profile_of(device_id).fields.values()} | set(_UNCLASSIFIED)
            ))
            region = self._lawful_region(site[1], kinds)
            if region is None:
                detail += f"; no region may hold {'/'.join(kinds)} data from {origin}: payload discarded"
        category = "/".join(kinds) if kinds else None
        return RejectionRecord(
            topic, code, detail, len(payload), device_id, seq,
            quarantine_id=quarantine_id(topic, payload, code, category), origin_country=origin,
            category=category, payload_region=region, payload=payload if region else None,
        )

    def _lawful_region(self, site: Site, categories: tuple[str, ...]) -> str | None:
        others = sorted(r for r in self.registry.regions if r != site.home_region)
        for region_name in [site.home_region, *others]:
            if all(self.policy.decide(self._flow(site, region_name, c, False)).allow for c in categories):
                return region_name
        return None

    def _flow(self, site: Site, region_name: str, category: str, edge_pseudonymized: bool) -> Flow:
        """The policy input of one flow. It depends only on the (immutable) registry, so it is built once
        per (site, region, category, edge transform) instead of once per message (hot path)."""
        key = (id(site), region_name, category, edge_pseudonymized)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = self._build_flow(site, region_name, category, edge_pseudonymized)
        return flow

    def _input_of(self, flow: Flow) -> dict[str, Any]:
        """The flow as logged in the decision record (JSON-ready), dumped once per memoized flow."""
        dumped = self._inputs.get(id(flow))
        if dumped is None:
            dumped = self._inputs[id(flow)] = flow.model_dump(mode="json")
        return dumped

    def _build_flow(self, site: Site, region_name: str, category: str, edge_pseudonymized: bool) -> Flow:
        return policy_flow(self.registry, site, region_name, category, edge_pseudonymized=edge_pseudonymized)

    def _route_batch(self, topic: str, payload: bytes, batch: Batch, site_id: str, site: Site) -> Routed:
        profile = self.registry.profile_of(batch.device_id)
        routed = Routed(device_id=batch.device_id, seq=batch.seq, readings=len(batch.readings))
        # category -> list of (idx, name, ts, value)
        parts: dict[str, list[tuple[int, str, datetime, Any]]] = defaultdict(list)
        undeclared: set[str] = set()
        for idx, reading in enumerate(batch.readings):
            for name, value in reading.values.items():
                spec = profile.fields.get(name)
                if spec is None:
                    undeclared.add(name)
                    continue
                parts[spec.category].append((idx, name, reading.ts, value))
        if undeclared:
            routed.rejections.append(self._quarantine(
                topic, payload, "undeclared_field",
                f"fields {sorted(undeclared)} are not declared in profile "
                f"{self.registry.devices[batch.device_id].profile!r}; they were not stored",
                batch.device_id, batch.seq, hold=True,
            ))

        candidates = self.registry.candidate_regions(site)
        edge = batch.edge_transforms
        # Measured volumes hook (ingest.volumes, docs/volumes.md): the data subjects of this message.
        subjects = subjects_of(batch, profile, site_id) if self.volumes is not None else {}
        transferred: set[str] = set()
        for category, values in parts.items():
            edge_pseudonymized = bool(edge) and all(edge.get(name) == "pseudonymized" for _, name, _, _ in values)
            placed = False
            for region_name in candidates:
                region = self.registry.regions[region_name]
                flow = self._flow(site, region_name, category, edge_pseudonymized)
                flow_input = None
                if subjects and region.country != site.country and self.volumes is not None:  # volumes hook
                    flow, flow_input = self.volumes.measured_flow(flow, site_id, region_name, subjects)
                decision = self.policy.decide(flow)
                did = decision_id(batch.device_id, batch.seq, category, region_name, decision.policy_revision)
                outcome, rows, decision = self._apply(decision, did, batch, site_id, site, category, values)
                if rows:
                    routed.rows.setdefault(region_name, []).extend(rows)
                    placed = True
                    if flow_input is not None and category in _PERSONAL:  # volumes hook
                        transferred.add(region_name)
                routed.decisions.append(DecisionRecord(
                    decision_id=did, device_id=batch.device_id, seq=batch.seq, site_id=site_id,
                    origin_country=site.country, category=category, region=region_name,
                    destination_country=region.country, outcome=outcome, decision=decision,
                    readings=len(batch.readings), input=flow_input if flow_input is not None else self._input_of(flow),
                ))
            if not placed:
                routed.rejections.append(self._quarantine(
                    topic, payload, "no_lawful_region",
                    f"no candidate region may hold {category} data from {site.country} "
                    f"({', '.join(candidates)}); {len(values)} values not stored",
                    batch.device_id, batch.seq, hold=True,
                    categories=tuple(sorted({f.category for f in profile.fields.values()})),
                ))
        if transferred and self.volumes is not None:  # volumes hook: the subjects now count where their data went
            self.volumes.record(site_id, transferred, subjects)
        return routed

    def _apply(
        self, decision: Decision, did: uuid.UUID, batch: Batch, site_id: str, site: Site, category: str,
        values: list[tuple[int, str, datetime, Any]],
    ) -> tuple[str, list[Row], Decision]:
        """Apply one decision to a category's values: (outcome, rows, decision as logged)."""
        if not decision.allow:
            return "denied", [], decision
        wanted_by = decision.transforms
        demanded = ({wanted_by.get(name, wanted_by.get(category)) for _, name, _, _ in values} if wanted_by
                    else {None})
        unsupported = sorted(t for t in demanded if t is not None and t not in transforms.SUPPORTED)
        if unsupported:
            reasons = [*decision.reasons, f"ingest cannot apply transform(s) {unsupported} per message"]
            return "denied", [], decision.model_copy(update={"allow": False, "reasons": reasons})
        rows: list[Row] = []
        if demanded == {None} and not batch.edge_transforms:  # hot path: values stored as they are
            device_id, seq, country, revision = batch.device_id, batch.seq, site.country, decision.policy_revision
            append = rows.append
            for idx, name, ts, value in values:
                kind = type(value)
                if kind is float:
                    append((device_id, seq, idx, name, ts, site_id, country, category, value, None, None, did,
                            revision))
                else:
                    num, txt = _split(value)
                    append((device_id, seq, idx, name, ts, site_id, country, category, num, txt, None, did,
                            revision))
            return "stored", rows, decision
        for idx, name, ts, value in values:
            edge = batch.edge_transforms.get(name) == "pseudonymized"
            wanted = decision.transforms.get(name, decision.transforms.get(category))
            if wanted is not None and not (wanted == "pseudonymize" and edge):
                keep, value = transforms.apply(wanted, value, self.pseudonymizer)
                if not keep:
                    continue
            transform = "pseudonymized" if edge or wanted == "pseudonymize" else None
            num, txt = _split(value)
            rows.append((batch.device_id, batch.seq, idx, name, ts, site_id, site.country, category, num, txt,
                         transform, did, decision.policy_revision))
        outcome = "stored" if demanded == {None} else "transformed"
        return outcome, rows, decision


def _split(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float)):  # a tuple: `int | float` builds a union object per call
        return float(value), None
    return None, str(value)
