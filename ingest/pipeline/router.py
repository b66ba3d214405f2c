"""From one MQTT message to rows per region, decision records and rejections. Pure: no I/O.

Python gathers the policy input and applies the output; the policy (Rego) decides. For each
category present in a batch and each candidate region (the site's home region, then the analytics
region) one flow is decided. Rows go to every region whose decision allows them, transformed as the
decision demands. A category that no region may hold is discarded: only metadata is kept.

A message is routed in isolation (docs/message-isolation.md): whatever exception routing one message
raises, the message ends as a quarantine record (``unprocessable``, or ``policy_error`` when the policy
could not evaluate its flows), never as an exception that stops the flush. Only an outage of the policy
engine (``PolicyUnavailableError``: OPA unreachable) propagates: the caller holds the messages and retries.

Routing is two steps so that the consumer can claim sequence numbers in between: :meth:`Router.parse`
(size, topic, payload, registry, origin) and :meth:`Router.route_parsed` (split, decide, transform).
:meth:`Router.route` does both.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ingest.cells.receive import CellContext, TransferRefused, check_part
from ingest.decision_ids import DecisionIds
from ingest.pipeline import transforms
from ingest.pipeline.transforms import Pseudonymizer
from ingest.quarantine import placement
from ingest.quarantine.placement import UNCLASSIFIED, quarantine_id
from ingest.records import DecisionRecord, RejectionRecord, Row, printable
from ingest.registry import FIELD_VALUE_TYPES, Profile, Registry, Site
from ingest.sparkplug.mapping import SpbParsed, to_batch
from ingest.sparkplug.sessions import Resolved, message_digest
from ingest.volumes.counter import Counts
from ingest.volumes.subjects import subjects_of
from ingest.volumes.tracker import VolumeTracker
from policy import Decision, Flow, PolicyEngine
from policy.errors import PolicyEvaluationError, PolicyUnavailableError
from policy.outcome import outcome_of
from wire import Batch, DataTopic, DecodeError, Status, StatusTopic, TopicError, decode_batch, decode_status
from wire.sparkplug import SparkplugError, SparkplugTopic
from wire.sparkplug import decode as decode_sparkplug

log = logging.getLogger("ingest.router")


@dataclass(slots=True)
class Parsed:
    """A valid batch of a registered device, before its sequence number is claimed and its data routed."""

    topic: str
    payload: bytes
    batch: Batch
    site_id: str
    site: Site
    digest: bytes  # SHA-256 of the (inflated) payload: the same (device, seq) with another digest is a conflict
    registry: Registry  # the registry it was parsed against


@dataclass
class Routed:
    """Everything one message produces; committed together, then the message is acknowledged."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    decisions: list[DecisionRecord] = field(default_factory=list)
    rejections: list[RejectionRecord] = field(default_factory=list)
    device_id: str | None = None
    seq: int | None = None
    readings: int = 0
    receipt: tuple[str, uuid.UUID] | None = None  # a part from a peer cell: (its cell, part id), receipted after commit
    # Its decisions may have been logged already (a redelivery or a re-sent part), maybe by another replica committing
    # right now: the control writer locks its device exclusively (ingest.store.control). False: this replica claimed
    # the message's seq first (the consumer sets it from the claim), so no one else logged or is logging it.
    redelivered: bool = True

    @property
    def stored(self) -> bool:
        return self.device_id is not None


_R = TypeVar("_R")

_GZIP_MAGIC = b"\x1f\x8b"
_WIRE_TYPE = {float: "number", int: "integer", bool: "boolean", str: "text"}

_PERSONAL = frozenset(UNCLASSIFIED)  # the categories whose subjects the measured volumes count
_PLANS_MAX = 50_000  # routing plans kept (one per device, shape and volume counts in use)


class _Using:
    """``with router._using(registry):`` the router's registry is ``registry`` inside, its own again after. A class,
    not a generator-based context manager: entered twice per message, it costs a fifth."""

    __slots__ = ("_current", "_registry", "_router")

    def __init__(self, router: Router, registry: Registry) -> None:
        self._router, self._registry = router, registry

    def __enter__(self) -> None:
        self._current, self._router.registry = self._router.registry, self._registry

    def __exit__(self, *_exc: object) -> None:
        self._router.registry = self._current


@dataclass(slots=True, frozen=True)
class _Step:
    """One category of a message in one candidate region, as planned (:meth:`Router._plan`)."""

    region: str
    country: str  # the region's
    decided: Decision  # as the policy answered
    policy_input: dict[str, Any]  # as logged
    measured: bool  # the policy input carries measured volumes (a cross-border route of a message with subjects)
    # (outcome, decision as logged, distinct decision id, document id) when they do not depend on the values' names:
    # a refusal, or an allowance that demands no transform. None: applied per message (Router._apply).
    fixed: tuple[str, Decision, uuid.UUID, uuid.UUID] | None


@dataclass(slots=True, frozen=True)
class _Plan:
    """How one device's messages of one shape are decided, category by category and region by region."""

    registry: Registry  # the registry it was made with (held: its identity is checked)
    gate: tuple[Flow, Decision] | None  # a flow and the decision object the policy answered it with
    steps: dict[str, tuple[_Step, ...]]  # category -> one step per candidate region, in order


def policy_flow(
    registry: Registry, site: Site, region_name: str, category: str, *, edge_pseudonymized: bool = False
) -> Flow:
    """The policy input for ``category`` data of ``site`` stored in region ``region_name``: what the registry
    says of the origin, the destination and the recipient."""
    region = registry.regions[region_name]
    return Flow.model_validate(
        {
            "origin": site.country,
            "destination": region.country,
            "category": category,
            "safeguards": list(site.safeguards.get(region.country, [])),
            "safeguard_dates": dict(site.safeguard_dates.get(region.country, {})),
            "recipient": dict(region.recipient),
            "entity": site.entity.model_dump(),
            "purpose": site.purpose,
            "volume": site.volume.model_dump(),
            "transforms_applied": ["pseudonymized"] if edge_pseudonymized else [],
        }
    )


class Router:
    def __init__(
        self,
        *,
        registry: Registry,
        policy: PolicyEngine,
        pseudonymizer: Pseudonymizer,
        max_bytes: int,
        cell: CellContext | None = None,
        volumes: VolumeTracker | None = None,
    ) -> None:
        """``cell``: this ingest serves one residency cell (docs/cells.md): messages of sites another cell serves
        are refused (``wrong_cell``), quarantined payloads are held only in the cell's own regions, and parts
        from peer cells are checked (:meth:`receive_part`)."""
        self.cell = cell
        self.registry = registry
        self.policy = policy
        self.pseudonymizer = pseudonymizer
        self.max_bytes = max_bytes
        self.volumes = volumes  # measured transfer volumes (ingest.volumes); None: the registry's figures only
        self._flows: dict[tuple[int, str, str, bool], Flow] = {}
        self._inputs: dict[int, dict[str, Any]] = {}  # keyed by id() of a memoized (never freed) flow
        self._fields: dict[int, dict[str, tuple[str, tuple[type, ...]]]] = {}  # keyed by id() of a profile
        self._spb_fields: dict[int, dict[str, str]] = {}  # Sparkplug metric -> field, keyed by id() of a profile
        self._ids = DecisionIds()
        # (device, shape, volume counts) -> how its messages are decided (_plan)
        self._plans: dict[tuple[str, tuple[tuple[str, bool], ...], tuple[Counts, ...]], _Plan] = {}
        self.plans_made = 0  # routing plans made, and messages routed by a plan made before (tests, profiling)
        self.plans_reused = 0
        self._registry_lock = threading.Lock()  # a message is routed against one registry, never two
        # the registry replaced by the last change, and when (time.monotonic()): for messages received before it
        self._previous: tuple[Registry, float] | None = None

    def replace_registry(self, registry: Registry) -> None:
        """Route messages received from now on with ``registry`` (a change made through the API,
        ingest.registry_sync); messages received before keep the registry in force when they arrived.
        The memoised flows were built from the old site definitions (keyed by ``id(site)``, which a new site
        may reuse once the old one is freed): they are dropped, between two messages (the lock)."""
        with self._registry_lock:
            self._previous = (self.registry, time.monotonic())
            self.registry = registry
            self._flows = {}
            self._inputs = {}
            self._fields = {}
            self._spb_fields = {}
            self._plans = {}

    def route(self, topic: str, payload: bytes, *, received: float | None = None) -> Routed:
        """Parse and route one message (in isolation: never raises but ``PolicyUnavailableError``).

        ``received``: the message's time.monotonic() on arrival; one received before the last registry change
        is routed with the registry in force then (a site's country, home region and a field's category take
        effect for data received after their change)."""
        parsed = self.parse(topic, payload, received=received)
        return parsed if isinstance(parsed, Routed) else self.route_parsed(parsed)

    def parse(self, topic: str, payload: bytes, *, received: float | None = None) -> Parsed | Routed:
        """Size, topic, payload, registry and origin checks: a :class:`Parsed` batch, or the message's rejection.
        Against the registry in force when the message was ``received`` (see :meth:`route`)."""
        with self._registry_lock, self._using(self._registry_at(received)):
            return self._guard(topic, payload, None, None, lambda: self._parse(topic, payload))

    def route_parsed(self, parsed: Parsed) -> Routed:
        """Split, decide and transform a parsed batch, against the registry it was parsed against (the one in
        force when it arrived); if that registry has been replaced twice since, the origin is checked again
        against the one in force now."""
        with self._registry_lock:
            batch = parsed.batch
            known = (self.registry, *((self._previous[0],) if self._previous is not None else ()))
            if not any(parsed.registry is r for r in known):
                return self._guard(
                    parsed.topic, parsed.payload, batch.device_id, batch.seq, lambda: self._reparse_and_route(parsed)
                )
            with self._using(parsed.registry):
                return self._guard(
                    parsed.topic,
                    parsed.payload,
                    batch.device_id,
                    batch.seq,
                    lambda: self._route_batch(parsed.topic, parsed.payload, batch, parsed.site_id, parsed.site),
                )

    # --- Sparkplug B (docs/sparkplug.md) ---
    def parse_sparkplug(self, topic: str, payload: bytes, *, received: float | None = None) -> SpbParsed | Routed:
        """Size, topic, registry (the edge node must be registered; its site gives the origin) and protobuf checks
        of a Sparkplug message: a :class:`SpbParsed`, or its rejection. Against the registry in force when it was
        ``received``."""
        with self._registry_lock, self._using(self._registry_at(received)):
            return self._guard(topic, payload, None, None, lambda: self._parse_sparkplug(topic, payload))

    def route_sparkplug(self, parsed: SpbParsed, resolved: Resolved) -> Routed:
        """Split, decide and transform a Sparkplug message resolved against its session (ingest.sparkplug.sessions),
        like a batch of ours: its device, seq = its position, its declared metrics as fields."""
        with self._registry_lock, self._using(parsed.registry):
            return self._guard(
                parsed.topic,
                parsed.payload,
                parsed.device_id,
                resolved.position,
                lambda: self._route_sparkplug(parsed, resolved),
            )

    def _parse_sparkplug(self, topic: str, payload: bytes) -> SpbParsed | Routed:
        def reject(code: str, detail: str, device: str | None = None, *, hold: bool = False) -> Routed:
            return Routed(rejections=[self._quarantine(topic, payload, code, detail, device, None, hold=hold)])

        if len(payload) > self.max_bytes:
            return reject("oversized", f"payload of {len(payload)} bytes exceeds the limit of {self.max_bytes} bytes")
        try:
            where = SparkplugTopic.parse(topic)
        except SparkplugError as exc:
            return reject(exc.code, exc.reason)
        registry = self.registry
        site_id = registry.sparkplug_node_site(where.group, where.edge_node)
        if site_id is None:
            return reject(
                "unknown_device",
                f"Sparkplug edge node {where.group}/{where.edge_node} is not in the "
                "registry (no device has sparkplug: {group: ..., edge_node: ...} naming it)",
            )
        site = registry.sites[site_id]
        device_id = registry.sparkplug_device(where.group, where.edge_node, where.device)
        holder = device_id or registry.sparkplug_device(where.group, where.edge_node, None)
        serving = self.cell.topology.cell_of_site(site_id) if self.cell is not None else None
        if self.cell is not None and serving != self.cell.name:
            return reject(
                "wrong_cell",
                f"site {site_id!r} is served by cell {serving!r}, not by cell "
                f"{self.cell.name!r}: its edge nodes must connect to their own cell's broker; payload not "
                "kept here",
                holder,
            )
        try:
            decoded = decode_sparkplug(payload)
        except SparkplugError as exc:
            return reject(exc.code, exc.reason, holder, hold=True)
        return SpbParsed(
            topic, payload, where, decoded, device_id, site_id, site, message_digest(topic, payload), registry
        )

    def _route_sparkplug(self, parsed: SpbParsed, r: Resolved) -> Routed:
        topic, payload, where = parsed.topic, parsed.payload, parsed.where
        holder = parsed.device_id or self.registry.sparkplug_device(where.group, where.edge_node, None)

        def q(code: str, detail: str, *, hold: bool = True) -> RejectionRecord:
            return self._quarantine(topic, payload, code, detail, holder, r.position, hold=hold)

        if r.refused is not None:
            return Routed(rejections=[q(*r.refused)])
        node = f"{where.group}/{where.edge_node}"
        if r.verdict == "conflict":
            return Routed(
                rejections=[
                    q(
                        "seq_conflict",
                        f"position {r.position} of Sparkplug edge node {node} was "
                        "claimed before by other content; not stored",
                    )
                ]
            )
        if r.verdict == "jump":
            return Routed(
                rejections=[
                    q(
                        "seq_jump",
                        f"position {r.position} of Sparkplug edge node {node} is further "
                        "ahead of its highest than it could have come; not stored",
                    )
                ]
            )
        merged: dict[str, list[str]] = {}
        for code, detail in r.problems:
            merged.setdefault(code, []).append(detail)
        extra = [q(code, "; ".join(details)) for code, details in merged.items()]
        if not r.metrics:  # a state message (death, a birth without data): nothing to decide
            return Routed(device_id=holder or where.node_key, seq=r.position, rejections=extra)
        if parsed.device_id is None:
            what = f"device {where.device!r}" if where.device is not None else "the edge node's own metrics"
            return Routed(
                rejections=[
                    *extra,
                    q(
                        "unknown_device",
                        f"{what} of Sparkplug edge node {node} is not in the registry (no device has "
                        f"sparkplug: {{group: {where.group}, edge_node: {where.edge_node}"
                        f"{', device: ' + where.device if where.device else ''}}}); "
                        f"its {len(r.metrics)} metrics were not stored",
                        hold=False,
                    ),
                ]
            )
        assert r.position is not None
        device = self.registry.devices[parsed.device_id]
        profile = self.registry.profiles[device.profile]
        fields = self._spb_fields.get(id(profile))
        if fields is None:
            fields = self._spb_fields[id(profile)] = profile.sparkplug_fields()
        batch, problems = to_batch(parsed, r.position, r.metrics, fields)
        for code, items in problems.items():
            if code == "undeclared_field":
                detail = (
                    f"Sparkplug metrics {sorted(set(items))[:20]} are not declared in profile {device.profile!r} "
                    "(no field has them as sparkplug_metric); they were not stored"
                )
            else:
                detail = "; ".join(items[:10])
            extra.append(q(code, detail))
        if batch is None:
            return Routed(rejections=extra)
        routed = self._route_batch(topic, payload, batch, parsed.site_id, parsed.site)
        routed.rejections.extend(extra)
        return routed

    def _registry_at(self, received: float | None) -> Registry:
        """The registry in force when a message arrived (time.monotonic()); the current one when unknown."""
        if received is not None and self._previous is not None and received < self._previous[1]:
            return self._previous[0]
        return self.registry

    def _using(self, registry: Registry) -> _Using:
        """Route with ``registry`` for a moment (under the lock): the memoised flows are keyed by the site
        objects, which differ between registries, so both can be memoised at once."""
        return _Using(self, registry)

    def reject_parsed(self, parsed: Parsed, code: str, detail: str) -> Routed:
        """A parsed batch refused as a whole (a sequence conflict or jump): quarantined like content that cannot
        be trusted (payload held only where every category it may hold is allowed)."""
        with self._registry_lock:
            batch = parsed.batch
            return self._guard(
                parsed.topic,
                parsed.payload,
                batch.device_id,
                batch.seq,
                lambda: Routed(
                    rejections=[
                        self._quarantine(
                            parsed.topic, parsed.payload, code, detail, batch.device_id, batch.seq, hold=True
                        )
                    ]
                ),
            )

    def receive_part(self, topic: str, payload: bytes) -> Routed:
        """A part from a peer cell: its rows for the local region and this cell's decisions, or its refusal
        (``transfer_refused``, metadata only). Either way receipted after commit (``Routed.receipt``)."""
        with self._registry_lock:
            return self._guard(topic, payload, None, None, lambda: self._receive_part(topic, payload))

    def _receive_part(self, topic: str, payload: bytes) -> Routed:
        if self.cell is None:
            return Routed(
                rejections=[
                    RejectionRecord(
                        topic,
                        "transfer_refused",
                        "this ingest is not a cell's: it accepts no transfers",
                        len(payload),
                        quarantine_id=quarantine_id(topic, payload, "transfer_refused", None),
                    )
                ]
            )
        registry = self.registry

        def decide(site_id: str, region: str, category: str, pseudonymized: bool) -> tuple[Flow, Decision]:
            flow = self._flow(registry.sites[site_id], region, category, pseudonymized)
            return flow, self.policy.decide(flow)

        try:
            accepted = check_part(topic, payload, cell=self.cell, registry=registry, decide=decide)
        except TransferRefused as exc:
            part = exc.part
            return Routed(
                rejections=[
                    RejectionRecord(
                        topic,
                        "transfer_refused",
                        exc.reason,
                        len(payload),
                        part.device_id if part else None,
                        part.seq if part else None,
                        quarantine_id=quarantine_id(topic, payload, "transfer_refused", None),
                        origin_country=part.origin_country if part else None,
                    )
                ],
                receipt=(part.from_cell, part.part_id) if part else None,
            )
        part = accepted.part
        site = registry.sites[part.site_id]
        region = registry.regions[part.region]
        readings = len({idx for idx, _ts, _values in part.readings})
        routed = Routed(
            rows={part.region: accepted.rows},
            device_id=part.device_id,
            seq=part.seq,
            readings=readings,
            receipt=(part.from_cell, part.part_id),
        )
        for category, (flow, decision) in accepted.decisions.items():
            outcome = "transformed" if decision.transforms else "stored"
            policy_input = self._input_of(flow)
            did, doc = self._ids.of(part.device_id, category, part.region, outcome, decision, policy_input)
            routed.decisions.append(
                DecisionRecord(
                    decision_id=did,
                    device_id=part.device_id,
                    seq=part.seq,
                    site_id=part.site_id,
                    origin_country=site.country,
                    category=category,
                    region=part.region,
                    destination_country=region.country,
                    outcome=outcome,
                    decision=decision,
                    readings=readings,
                    input=policy_input,
                    doc_id=doc,
                )
            )
        return routed

    def status(self, topic: str, payload: bytes, now: datetime, max_skew: timedelta) -> Status | RejectionRecord:
        """A gateway status, checked against its topic and the registry; or its rejection (``bad_status``,
        metadata only). It must name the gateway and site of its topic, list only devices of that site, and
        not be dated beyond ``max_skew`` ahead of ``now`` (a future date would freeze the gateway's status)."""

        def bad(detail: str) -> RejectionRecord:
            return RejectionRecord(
                topic,
                "bad_status",
                detail,
                len(payload),
                quarantine_id=quarantine_id(topic, payload, "bad_status", None),
            )

        try:
            where = StatusTopic.parse(topic)
            status = decode_status(payload)
        except (TopicError, DecodeError) as exc:
            return bad(str(exc))
        if (status.gateway_id, status.site_id) != (where.gateway_id, where.site_id):
            return bad(
                f"status names gateway {status.gateway_id!r} of site {status.site_id!r}; its topic is "
                f"gateway {where.gateway_id!r} of site {where.site_id!r}"
            )
        with self._registry_lock:
            registry = self.registry
        if status.site_id not in registry.sites:
            return bad(f"site {status.site_id!r} is not in the registry")
        foreign = sorted(
            d for d in status.devices if d in registry.devices and registry.devices[d].site != status.site_id
        )
        if foreign:
            return bad(f"status of site {status.site_id!r} lists devices of other sites: {foreign[:10]}")
        if status.at > now + max_skew:
            return bad(
                f"status dated {status.at.isoformat()}, more than {max_skew.total_seconds():.0f} s ahead of "
                f"the ingest's clock ({now.isoformat()})"
            )
        return status

    def _guard(
        self, topic: str, payload: bytes, device_id: str | None, seq: int | None, work: Callable[[], _R]
    ) -> _R | Routed:
        """Run ``work`` for one message; any exception but a policy outage becomes the message's rejection."""
        try:
            return work()
        except PolicyUnavailableError:
            raise  # an outage, not this message's fault: the caller holds it and retries
        except Exception as exc:  # isolation: one message must never stop the flush (docs/message-isolation.md)
            code = "policy_error" if isinstance(exc, PolicyEvaluationError) else "unprocessable"
            if code == "unprocessable":
                log.exception("routing a message on %s failed; quarantined as unprocessable", printable(topic, 200))
            detail = f"{type(exc).__name__}: {exc}"
            try:
                record = self._quarantine(topic, payload, code, detail, device_id, seq, hold=True)
            except Exception:  # the policy cannot say where the payload may live: metadata only
                record = RejectionRecord(
                    topic,
                    code,
                    detail + "; payload discarded (no lawful region could be determined)",
                    len(payload),
                    device_id,
                    seq,
                    quarantine_id=quarantine_id(topic, payload, code, None),
                )
            return Routed(rejections=[record])

    def _reparse_and_route(self, parsed: Parsed) -> Routed:
        again = self._parse(parsed.topic, parsed.payload)
        if isinstance(again, Routed):
            return again
        return self._route_batch(again.topic, again.payload, again.batch, again.site_id, again.site)

    def _parse(self, topic: str, payload: bytes) -> Parsed | Routed:
        size = len(payload)

        def reject(
            code: str, detail: str, device: str | None = None, seq: int | None = None, *, hold: bool = False
        ) -> Routed:
            return Routed(rejections=[self._quarantine(topic, payload, code, detail, device, seq, hold=hold)])

        if size > self.max_bytes:
            return reject("oversized", f"payload of {size} bytes exceeds the limit of {self.max_bytes} bytes")
        try:
            parsed_topic = DataTopic.parse(topic)
        except TopicError as exc:
            return reject("bad_topic", str(exc))
        try:
            inflated = self._inflate(payload)
            batch = decode_batch(inflated)
        except DecodeError as exc:
            return reject("malformed", str(exc), parsed_topic.device_id, hold=True)
        if batch.device_id != parsed_topic.device_id:
            return reject(
                "topic_mismatch",
                f"payload device_id {batch.device_id!r} differs from topic device {parsed_topic.device_id!r}",
                parsed_topic.device_id,
                batch.seq,
            )
        found = self.registry.site_of(batch.device_id)
        if found is None:
            return reject(
                "unknown_device", f"device {batch.device_id!r} is not in the registry", batch.device_id, batch.seq
            )
        site_id, site = found
        if parsed_topic.site_id != site_id:
            return reject(
                "site_mismatch",
                f"device {batch.device_id!r} belongs to site {site_id!r}, published under site "
                f"{parsed_topic.site_id!r}",
                batch.device_id,
                batch.seq,
            )
        if self.cell is not None and self.cell.topology.cell_of_site(site_id) != self.cell.name:
            return reject(
                "wrong_cell",
                f"site {site_id!r} is served by cell {self.cell.topology.cell_of_site(site_id)!r}, not by cell "
                f"{self.cell.name!r}: its gateways must connect to their own cell's broker; payload not kept here",
                batch.device_id,
                batch.seq,
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
                batch.device_id,
                batch.seq,
            )
        return Parsed(topic, payload, batch, site_id, site, hashlib.sha256(inflated).digest(), self.registry)

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
        self,
        topic: str,
        payload: bytes,
        code: str,
        detail: str,
        device_id: str | None,
        seq: int | None,
        *,
        hold: bool,
        categories: tuple[str, ...] | None = None,
    ) -> RejectionRecord:
        """A rejection, its payload held where :mod:`ingest.quarantine.placement` finds it may lawfully live. In a
        cell, only among the cell's own regions: a quarantined payload is raw, and a raw payload never leaves its
        cell."""
        return placement.rejection(
            topic,
            payload,
            code,
            detail,
            device_id,
            seq,
            hold=hold,
            categories=categories,
            registry=self.registry,
            regions=self.cell.regions if self.cell is not None else self.registry.regions,
            allows=self._allows,
        )

    def _allows(self, site: Site, region_name: str, category: str) -> bool:
        """Whether the policy lets ``category`` data of ``site`` live in ``region_name`` (as it arrived)."""
        return self.policy.decide(self._flow(site, region_name, category, False)).allow

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

    def _field_index(self, profile: Profile) -> dict[str, tuple[str, tuple[type, ...]]]:
        """name -> (category, Python types its values may have), per profile (hot path: one lookup per value)."""
        index = self._fields.get(id(profile))
        if index is None:
            index = self._fields[id(profile)] = {
                name: (spec.category, FIELD_VALUE_TYPES[spec.type]) for name, spec in profile.fields.items()
            }
        return index

    def _route_batch(self, topic: str, payload: bytes, batch: Batch, site_id: str, site: Site) -> Routed:
        profile = self.registry.profile_of(batch.device_id)
        fields = self._field_index(profile)
        routed = Routed(device_id=batch.device_id, seq=batch.seq, readings=len(batch.readings))
        # category -> list of (idx, name, ts, value)
        parts: dict[str, list[tuple[int, str, datetime, Any]]] = defaultdict(list)
        undeclared: set[str] = set()
        wrong: dict[str, str] = {}  # field -> the type of its first wrong value
        for idx, reading in enumerate(batch.readings):
            for name, value in reading.values.items():
                spec = fields.get(name)
                if spec is None:
                    undeclared.add(name)
                    continue
                if value is not None and type(value) not in spec[1]:
                    wrong.setdefault(name, _WIRE_TYPE.get(type(value), type(value).__name__))
                    continue
                parts[spec[0]].append((idx, name, reading.ts, value))
        profile_name = self.registry.devices[batch.device_id].profile
        if undeclared:
            routed.rejections.append(
                self._quarantine(
                    topic,
                    payload,
                    "undeclared_field",
                    f"fields {sorted(undeclared)} are not declared in profile {profile_name!r}; they were not stored",
                    batch.device_id,
                    batch.seq,
                    hold=True,
                )
            )
        if wrong:
            found = ", ".join(
                f"{name}: {kind}, declared {profile.fields[name].type}" for name, kind in sorted(wrong.items())
            )
            routed.rejections.append(
                self._quarantine(
                    topic,
                    payload,
                    "wrong_type",
                    f"values of the wrong type in profile {profile_name!r} ({found}); those values were not stored",
                    batch.device_id,
                    batch.seq,
                    hold=True,
                )
            )

        candidates = self.registry.candidate_regions(site)
        # Measured volumes hook (ingest.volumes, docs/volumes.md): the data subjects of this message.
        subjects = subjects_of(batch, profile, site_id) if self.volumes is not None else {}
        plan = self._plan(batch, site_id, site, candidates, parts, subjects)
        plain_rows = not batch.edge_transforms
        transferred: set[str] = set()
        for category, values in parts.items():
            placed = False
            for step in plan.steps[category]:
                if step.fixed is not None and plain_rows:  # hot path: outcome and ids as planned
                    outcome, decision, did, doc = step.fixed
                    rows = (
                        self._plain_rows(batch, site_id, site.country, category, values, did, decision)
                        if decision.allow
                        else []
                    )
                else:
                    outcome, rows, decision, did, doc = self._apply(
                        step.decided, step.policy_input, batch, site_id, site, category, step.region, values
                    )
                if rows:
                    routed.rows.setdefault(step.region, []).extend(rows)
                    placed = True
                    if step.measured and category in _PERSONAL:  # volumes hook
                        transferred.add(step.region)
                routed.decisions.append(
                    DecisionRecord(  # positional, in field order: half the cost of keywords (several per message)
                        did,
                        batch.device_id,
                        batch.seq,
                        site_id,
                        site.country,
                        category,
                        step.region,
                        step.country,
                        outcome,
                        decision,
                        len(batch.readings),
                        step.policy_input,
                        doc,
                    )
                )
            if not placed:
                routed.rejections.append(
                    self._quarantine(
                        topic,
                        payload,
                        "no_lawful_region",
                        f"no candidate region may hold {category} data from {site.country} "
                        f"({', '.join(candidates)}); {len(values)} values not stored",
                        batch.device_id,
                        batch.seq,
                        hold=True,
                        categories=tuple(sorted({f.category for f in profile.fields.values()})),
                    )
                )
        if transferred and self.volumes is not None:  # volumes hook: the subjects now count where their data went
            self.volumes.record(site_id, transferred, subjects)
        return routed

    def _plan(
        self,
        batch: Batch,
        site_id: str,
        site: Site,
        candidates: list[str],
        parts: dict[str, list[tuple[int, str, datetime, Any]]],
        subjects: dict[bytes, bool],
    ) -> _Plan:
        """How each category of the message is decided in each candidate region (docs/small-messages.md, "Routing
        plans"): the plan of the device's previous message of the same shape when it still holds, else a new one.

        A plan holds while (1) the registry is the one it was made with, (2) the message has the same categories,
        each edge-pseudonymised or not alike, (3) the measured volume counts of each cross-border route, this
        message's subjects included, are those it was made with (the same counts give the same measured flows),
        and (4) the policy still answers its gate flow with the very decision object it answered then. (4) is one
        ``decide`` call through the policy's cache: a new revision, a new UTC day (adequacy that expires), a held
        or closed policy, an engine without cache or an evicted entry all give another object (or wait, or raise),
        and the plan is made again; a plan never outlives a decision the cache would not serve."""
        edge = batch.edge_transforms
        shape = tuple(
            (category, bool(edge) and all(edge.get(name) == "pseudonymized" for _, name, _, _ in values))
            for category, values in parts.items()
        )
        volumes = self.volumes
        counts: tuple[Counts, ...] = ()
        counted: dict[str, Counts] = {}
        if subjects and volumes is not None:
            foreign = [r for r in candidates if self.registry.regions[r].country != site.country]
            counts = volumes.counts_with(site_id, foreign, subjects)
            counted = dict(zip(foreign, counts, strict=True))
        key = (batch.device_id, shape, counts)
        plan = self._plans.get(key)
        if plan is not None and plan.registry is self.registry:
            gate = plan.gate
            if gate is not None and self.policy.decide(gate[0]) is gate[1]:
                self.plans_reused += 1
                return plan
        gate = None
        steps: dict[str, tuple[_Step, ...]] = {}
        for category, edge_pseudonymized in shape:
            planned = []
            for region_name in candidates:
                region = self.registry.regions[region_name]
                flow = self._flow(site, region_name, category, edge_pseudonymized)
                flow_input = None
                if subjects and region.country != site.country and volumes is not None:  # volumes hook
                    # raised with the counts of the plan's key (another replica's records may have arrived since)
                    flow, flow_input = volumes.measured_flow(flow, counted[region_name])
                decision = self.policy.decide(flow)
                if gate is None:
                    gate = (flow, decision)
                policy_input = flow_input if flow_input is not None else self._input_of(flow)
                fixed = None
                if not decision.allow or not decision.transforms:  # else the values' names decide the outcome
                    outcome = outcome_of(decision.allow)
                    did, doc = self._ids.of(batch.device_id, category, region_name, outcome, decision, policy_input)
                    fixed = (outcome, decision, did, doc)
                planned.append(
                    _Step(region_name, region.country, decision, policy_input, flow_input is not None, fixed)
                )
            steps[category] = tuple(planned)
        plan = _Plan(self.registry, gate, steps)
        self.plans_made += 1
        if gate is not None:  # no gate: no category or no candidate region, nothing to keep
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()  # cheaper than an LRU on every hit; refilled from the next messages
            self._plans[key] = plan
        return plan

    @staticmethod
    def _plain_rows(
        batch: Batch,
        site_id: str,
        country: str,
        category: str,
        values: list[tuple[int, str, datetime, Any]],
        did: uuid.UUID,
        decision: Decision,
    ) -> list[Row]:
        """The rows of values stored as they are (no transform demanded, none applied at the edge): the hot path."""
        device_id, seq, revision = batch.device_id, batch.seq, decision.policy_revision
        # tuple.__new__(Row, ...): half of Row._make's cost and a fifth of Row(...)'s (a row per value). A Row still
        # costs 1.4x a plain tuple here (no free list, tracked by the GC): +0.36 ms per 100-reading message.
        rows: list[Row] = []
        append, new = rows.append, tuple.__new__
        for idx, name, ts, value in values:
            if type(value) is float:
                append(
                    new(
                        Row,
                        (device_id, seq, idx, name, ts, site_id, country, category, value, None, None, did, revision),
                    )
                )
            else:
                num, txt = _split(value)
                append(
                    new(Row, (device_id, seq, idx, name, ts, site_id, country, category, num, txt, None, did, revision))
                )
        return rows

    def _apply(
        self,
        decision: Decision,
        policy_input: dict[str, Any],
        batch: Batch,
        site_id: str,
        site: Site,
        category: str,
        region: str,
        values: list[tuple[int, str, datetime, Any]],
    ) -> tuple[str, list[Row], Decision, uuid.UUID, uuid.UUID]:
        """Apply one decision to a category's values in ``region``: (outcome, rows, decision as logged, distinct
        decision id, document id); the rows carry the distinct decision's id (ingest.decision_ids)."""
        ids = self._ids.of
        if not decision.allow:
            outcome = outcome_of(decision.allow)
            return outcome, [], decision, *ids(batch.device_id, category, region, outcome, decision, policy_input)
        wanted_by = decision.transforms
        demanded = (
            {wanted_by.get(name, wanted_by.get(category)) for _, name, _, _ in values} if wanted_by else _NONE_DEMANDED
        )
        unsupported = (
            sorted(t for t in demanded if t is not None and t not in transforms.SUPPORTED) if wanted_by else None
        )
        if unsupported:
            reasons = [*decision.reasons, f"ingest cannot apply transform(s) {unsupported} per message"]
            refused = decision.model_copy(update={"allow": False, "reasons": reasons})
            outcome = outcome_of(allow=False)
            return outcome, [], refused, *ids(batch.device_id, category, region, outcome, refused, policy_input)
        rows: list[Row] = []
        outcome = outcome_of(decision.allow, transformed=demanded != _NONE_DEMANDED)
        did, doc = ids(batch.device_id, category, region, outcome, decision, policy_input)
        if demanded == _NONE_DEMANDED and not batch.edge_transforms:  # values stored as they are
            return (
                outcome,
                self._plain_rows(batch, site_id, site.country, category, values, did, decision),
                decision,
                did,
                doc,
            )
        for idx, name, ts, value in values:
            edge = batch.edge_transforms.get(name) == "pseudonymized"
            wanted = decision.transforms.get(name, decision.transforms.get(category))
            if wanted is not None and not (wanted == "pseudonymize" and edge):
                keep, value = transforms.apply(wanted, value, self.pseudonymizer)
                if not keep:
                    continue
            transform = "pseudonymized" if edge or wanted == "pseudonymize" else None
            num, txt = _split(value)
            rows.append(
                Row(
                    batch.device_id,
                    batch.seq,
                    idx,
                    name,
                    ts,
                    site_id,
                    site.country,
                    category,
                    num,
                    txt,
                    transform,
                    did,
                    decision.policy_revision,
                )
            )
        return outcome, rows, decision, did, doc


_NONE_DEMANDED = frozenset({None})  # no transform demanded (the common case: compared, never changed)


def _split(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float)):  # a tuple: `int | float` builds a union object per call
        return float(value), None
    return None, str(value)
