"""Quarantine lifecycle for the compliance role: inspect, release, dismiss, and expire after the retention.

A release re-runs the decision on the held payload with the registry and policy in force now and routes the
data once: the control row is locked while the data is written, a second release of the same item finds it
``released`` and is refused, and the stores are idempotent in any case. It is generic over reason codes: it
succeeds when the re-run no longer rejects the message for the item's code; codes whose release can never
succeed are refused at once, with why. Dismissal closes any open item with a reason; the retention deletes
held payloads after ``INGEST_QUARANTINE_RETENTION_DAYS``. Every outcome, refused releases and payload views
included, is in the audit trail. Design: docs/quarantine.md.

Its SQL is in :mod:`ingest.quarantine.store`; a release writes through the pipeline's writers (the consumer's
``new_writer`` and ``new_control_writer``), never writers of its own. Errors are types (:class:`UnknownItemError`,
:class:`ItemStateError`); the API maps them to HTTP statuses.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from ingest.config import IngestSettings
from ingest.errors import IngestError, StoreUnavailableError
from ingest.pipeline.router import Router
from ingest.quarantine import store
from ingest.store import audit
from ingest.store.control import ControlWriter
from ingest.store.region import RegionWriter

if TYPE_CHECKING:
    from ingest.cells.outbox import OutboxWriter

log = logging.getLogger("ingest.quarantine")

OPEN_STATES = ("held", "discarded")
CLOSED_STATES = ("released", "dismissed", "expired")

NEVER_RELEASABLE: dict[str, str] = {
    "malformed": "the payload does not decode as a telemetry batch, and no registry or policy change can make "
    "it decode",
    "oversized": "the payload is over the size limit and was never kept",
    "bad_topic": "the topic is not a telemetry topic",
    "topic_mismatch": "the payload names another device than its topic",
    "origin_mismatch": "the payload claims another origin than the registry gives its device (possible spoofing)",
    "seq_conflict": "a batch with the same sequence number and other content was stored first; storing this one "
    "too would give the device two batches under one number (a gateway whose numbering restarted "
    "needs a new device id)",
    "bad_status": "a gateway status is not data: the gateway's next genuine status replaces it",
    "wrong_cell": "the site is served by another cell: its gateway must connect to that cell's broker (the payload "
    "was not kept here)",
    "transfer_refused": "this cell's policy refused a part another cell sent; that cell keeps the data",
    "spb_no_birth": "Sparkplug data before its birth cannot be read (its aliases and datatypes are in the birth); the "
    "ingest asked the edge node for a Rebirth, after which its data flows",
    "spb_unknown_alias": "the birth of the message's session never declared the alias; the ingest asked the edge "
    "node for a Rebirth",
    "spb_stale_session": "the message belongs to an earlier session of its edge node, whose aliases may differ",
    "spb_unsupported_type": "the ingest stores no Sparkplug DataSet, Template, Bytes, File, PropertySet or array "
    "values",
    "spb_bad_value": "the value does not fit its Sparkplug datatype or the stores",
}
"""Codes whose release can never succeed, and why (the item can be dismissed)."""

RELEASE_NEEDS: dict[str, str] = {
    "undeclared_field": "declare the fields in the device's profile, or move the device to a profile that "
    "declares them (registry)",
    "no_lawful_region": "a policy revision (or a safeguard in the registry) that lets a candidate region hold "
    "the category",
    "unknown_device": "register the device (registry)",
    "site_mismatch": "move the device to the site it publishes under, or fix its gateway's topics (registry)",
    "wrong_type": "declare the fields with the type their values have (registry)",
    "seq_jump": "confirming that the jump is genuine (e.g. the gateway's queue dropped batches during a long outage): "
    "the release stores the batch and moves the device's highest sequence number",
    "policy_error": "a policy revision that evaluates the message's flows",
}
"""What change can make the release of an item of each code succeed."""

_ANY_CHANGE = "a registry or policy change after which the ingest accepts the message"


def release_note(code: str, state: str) -> tuple[bool, str]:
    """(whether a release can be tried now, what it needs or why it cannot succeed)."""
    if state in CLOSED_STATES:
        return False, f"closed ({state})"
    if code in NEVER_RELEASABLE:
        return False, f"{code} items cannot be released: {NEVER_RELEASABLE[code]}; dismiss it"
    if state == "discarded":
        return False, (
            "the payload was discarded at receipt (no region may hold it lawfully, or its origin is "
            "unknown or disputed): nothing to release; dismiss it"
        )
    return True, f"release succeeds after: {RELEASE_NEEDS.get(code, _ANY_CHANGE)}"


class QuarantineError(IngestError):
    """A quarantine item cannot be released or dismissed (the API answers each kind with its HTTP status)."""


class UnknownItemError(QuarantineError):
    """No quarantine item has this id."""


class ItemStateError(QuarantineError):
    """The item's state or code does not allow it (closed already, never releasable, still rejected, ...)."""


@dataclass(frozen=True)
class ReleaseResult:
    quarantine_id: uuid.UUID
    released_by: str
    policy_revision: str
    rows: dict[str, int]
    decisions: list[dict[str, Any]]
    other_rejections: list[dict[str, str]]


@dataclass(frozen=True)
class Closed:
    quarantine_id: uuid.UUID
    state: str
    closed_by: str
    closed_at: datetime
    close_reason: str
    payload_deleted: bool


class QuarantineService:
    def __init__(
        self,
        settings: IngestSettings,
        router: Router,
        *,
        writers: Callable[[str], RegionWriter | OutboxWriter],
        control: Callable[[], ControlWriter],
    ) -> None:
        """``writers(region)`` and ``control()``: the pipeline's writers for a release's rows (a cell writes the
        regions of other cells to its outbox) and control records (ingest.pipeline.consumer.Consumer.new_writer,
        new_control_writer); each is closed after the release."""
        self.settings = settings
        self.router = router
        self._writer = writers
        self._control_writer = control

    # --- payloads ---------------------------------------------------------------------------------
    def payload(self, region: str, qid: uuid.UUID) -> tuple[str, bytes] | None:
        return store.read_payload(region, self.settings.region_dsns[region], qid)

    def record_view(self, qid: uuid.UUID, *, actor: str, region: str, payload_bytes: int) -> None:
        """An audit row for a payload shown to ``actor`` (personal data may be in it)."""
        with self._control() as conn, conn.transaction():
            audit.record(
                conn,
                actor=actor,
                action="quarantine.view",
                target=f"quarantine:{qid}",
                regions={region},
                details={"payload_bytes": payload_bytes},
            )

    def _control(self) -> psycopg.Connection[store.Item]:
        return store.connect_control(self.settings.control_dsn)

    # --- release ----------------------------------------------------------------------------------
    def release(self, qid: uuid.UUID, *, actor: str) -> ReleaseResult:
        """Re-run the decision and route the data once; QuarantineError when not (the caller records the refusal:
        :meth:`record_refusal`)."""
        held = getattr(self.router.policy, "held", None)  # OPA serves a revision that breaks an invariant
        if held:
            raise StoreUnavailableError("policy", f"routing paused: {held}")
        return self._release(qid, actor)

    def record_refusal(self, qid: uuid.UUID, *, actor: str, reason: str, status: int) -> None:
        """The audit row of a refused release (its own transaction: the release rolled back); ``status``: how the
        refusal was answered (the API's HTTP status). Logged, not raised, when the control store fails."""
        try:
            with self._control() as conn, conn.transaction():
                item = store.item_summary(conn, qid)
                audit.record(
                    conn,
                    actor=actor,
                    action="quarantine.release_refused",
                    target=f"quarantine:{qid}",
                    regions={item["payload_region"]} if item and item["payload_region"] else (),
                    details={
                        "code": item["code"] if item else None,
                        "status": status,
                        "reason": reason,
                        "policy_revision": self.router.policy.revision,
                    },
                )
        except (psycopg.Error, StoreUnavailableError) as err:
            log.error("could not record the refused release of %s by %s: %s", qid, actor, err)

    def _release(self, qid: uuid.UUID, actor: str) -> ReleaseResult:
        with self._control() as conn, conn.transaction():
            item = store.lock_item(conn, qid)
            if item is None:
                raise UnknownItemError(f"unknown quarantine item {qid}")
            if item["state"] in CLOSED_STATES:
                by = item["closed_by"] or item["released_by"] or "?"
                raise ItemStateError(f"quarantine item {qid} is {item['state']} (by {by}), not held")
            releasable, why = release_note(item["code"], item["state"])
            if not releasable:
                raise ItemStateError(f"quarantine item {qid}: {why}")
            found = self.payload(item["payload_region"], qid)
            if found is None:
                raise ItemStateError(f"payload of {qid} is missing from {item['payload_region']}")
            topic, payload = found
            if topic.startswith("spBv1.0/"):
                raise ItemStateError(
                    f"quarantine item {qid} is a Sparkplug B message: a release would need its edge node's session "
                    "(births, aliases) at the time; not supported yet. Fix the registry and ask the edge node for a "
                    "Rebirth, then dismiss the item"
                )
            routed = self.router.route(topic, payload)
            revision = self.router.policy.revision
            same = [r for r in routed.rejections if r.code == item["code"]]
            if same:
                problems = "; ".join(f"{r.code}: {r.detail}" for r in same)
                raise ItemStateError(
                    f"still rejected under policy {revision} and the registry in force: {problems}. "
                    f"Release succeeds after: {RELEASE_NEEDS.get(item['code'], _ANY_CHANGE)}"
                )
            rows: dict[str, int] = {}
            for region, region_rows in routed.rows.items():
                writer = self._writer(region)
                try:
                    writer.write(region_rows)
                finally:
                    writer.close()
                rows[region] = len(region_rows)
            control = self._control_writer()
            try:
                batches = (
                    {routed.device_id: [(routed.seq, routed.readings)]}
                    if routed.device_id and routed.seq is not None
                    else {}
                )  # a stored message has both
                control.write(decisions=routed.decisions, rejections=[], batches=batches, statuses=[])
            finally:
                control.close()
            decisions = [
                {
                    "category": d.category,
                    "region": d.region,
                    "outcome": d.outcome,
                    "decision_id": str(d.decision_id),
                    "reasons": d.decision.reasons,
                }
                for d in routed.decisions
            ]
            others = [{"code": r.code, "detail": r.detail} for r in routed.rejections]
            result = {"rows": rows, "decisions": decisions, "policy_revision": revision, "other_rejections": others}
            store.mark_released(conn, qid, actor=actor, result=result)
            audit.record(  # same transaction as the state change
                conn,
                actor=actor,
                action="quarantine.release",
                target=f"quarantine:{qid}",
                regions={item["payload_region"], *rows},
                details={
                    "device_id": item["device_id"],
                    "code": item["code"],
                    "rows": rows,
                    "policy_revision": revision,
                },
            )
        self._forget_payload(item["payload_region"], qid)
        log.info("quarantine item %s released by %s: rows %s", qid, actor, rows)
        return ReleaseResult(qid, actor, revision, rows, decisions, others)

    # --- dismiss and expire -----------------------------------------------------------------------
    def dismiss(self, qid: uuid.UUID, *, actor: str, reason: str) -> Closed:
        """Close an open item (held or discarded) with ``reason``; its payload, if any, is deleted."""
        return self._close(qid, state="dismissed", actor=actor, reason=reason, action="quarantine.dismiss")

    def _close(
        self, qid: uuid.UUID, *, state: str, actor: str, reason: str, action: str, older_than: datetime | None = None
    ) -> Closed:
        with self._control() as conn, conn.transaction():
            item = store.lock_item(conn, qid)
            if item is None:
                raise UnknownItemError(f"unknown quarantine item {qid}")
            if item["state"] not in OPEN_STATES:
                raise ItemStateError(f"quarantine item {qid} is already {item['state']}")
            if older_than is not None and (item["state"] != "held" or item["received_at"] >= older_than):
                raise ItemStateError(f"quarantine item {qid} is no longer due")  # another replica acted
            closed_at = store.mark_closed(conn, qid, state=state, actor=actor, reason=reason)
            audit.record(
                conn,
                actor=actor,
                action=action,
                target=f"quarantine:{qid}",
                regions={item["payload_region"]} if item["payload_region"] else (),
                details={
                    "code": item["code"],
                    "device_id": item["device_id"],
                    "previous_state": item["state"],
                    "reason": reason,
                },
            )
        deleted = item["payload_region"] is not None and self._forget_payload(item["payload_region"], qid)
        log.info("quarantine item %s %s by %s: %s", qid, state, actor, reason)
        return Closed(qid, state, actor, closed_at, reason, deleted)

    def expire(self, now: datetime, *, retention: timedelta, limit: int = 500) -> int:
        """Delete held payloads received before ``now - retention`` (state 'expired'); return how many."""
        cutoff = now - retention
        with self._control() as conn:
            due = store.due_for_expiry(conn, cutoff, limit)
        expired = 0
        days = retention / timedelta(days=1)
        for qid in due:
            try:
                self._close(
                    qid,
                    state="expired",
                    actor="retention",
                    action="quarantine.expire",
                    reason=f"retention of {days:g} days (INGEST_QUARANTINE_RETENTION_DAYS) elapsed",
                    older_than=cutoff,
                )
                expired += 1
            except QuarantineError:
                continue  # released, dismissed or expired meanwhile
        return expired

    def _forget_payload(self, region: str, qid: uuid.UUID) -> bool:
        """The quarantine copy is deleted (the data now lives where the policy puts it, or nowhere)."""
        try:
            store.delete_payload(self.settings.region_dsns[region], qid)
            return True
        except psycopg.Error as exc:
            log.error("closed %s but could not delete its quarantine copy in %s: %s", qid, region, exc)
            return False


class QuarantineRetention:
    """A thread that expires held payloads older than the retention, every ``INGEST_QUARANTINE_SWEEP_S``."""

    def __init__(self, service: QuarantineService, settings: IngestSettings) -> None:
        self.service = service
        self.retention = timedelta(days=settings.quarantine_retention_days)
        self.every_s = settings.quarantine_sweep_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quarantine-retention", daemon=True)

    def start(self) -> None:
        if self.retention > timedelta(0):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        from datetime import UTC

        while not self._stop.is_set():
            try:
                n = self.service.expire(datetime.now(UTC), retention=self.retention)
                if n:
                    log.info("quarantine retention: %d held payload(s) expired", n)
            except (psycopg.Error, StoreUnavailableError) as exc:
                log.warning("quarantine retention: %s; retrying in %.0f s", exc, self.every_s)
            self._stop.wait(self.every_s)
