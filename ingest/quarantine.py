"""Quarantine review and release, for the compliance role.

A release re-runs the decision on the held payload with the policy in force now and routes the data
once: the control row is locked while the data is written, a second release of the same item finds it
``released`` and is refused, and the stores are idempotent in any case.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.config import IngestSettings
from ingest.errors import IngestError, StoreUnavailableError
from ingest.pipeline.router import Router
from ingest.store import audit
from ingest.store.control import ControlWriter
from ingest.store.region import RegionWriter

log = logging.getLogger("ingest.quarantine")


class QuarantineError(IngestError):
    """A quarantine item cannot be released; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReleaseResult:
    quarantine_id: uuid.UUID
    released_by: str
    policy_revision: str
    rows: dict[str, int]
    decisions: list[dict[str, Any]]


class QuarantineService:
    def __init__(self, settings: IngestSettings, router: Router) -> None:
        self.settings = settings
        self.router = router

    def payload(self, region: str, qid: uuid.UUID) -> tuple[str, bytes] | None:
        dsn = self.settings.region_dsns[region]
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT topic, payload FROM quarantine_payloads WHERE quarantine_id = %s", (qid,)
                ).fetchone()
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(region, str(exc).strip().splitlines()[0]) from None
        return (row[0], bytes(row[1])) if row else None

    def release(self, qid: uuid.UUID, *, actor: str) -> ReleaseResult:
        held = getattr(self.router.policy, "held", None)  # OPA serves a revision that breaks an invariant
        if held:
            raise StoreUnavailableError("policy", f"routing paused: {held}")
        try:
            conn = psycopg.connect(self.settings.control_dsn, connect_timeout=5, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError("control", str(exc).strip().splitlines()[0]) from None
        with conn, conn.transaction():
            item = conn.execute(
                "SELECT * FROM rejections WHERE quarantine_id = %s FOR UPDATE", (qid,)
            ).fetchone()
            if item is None:
                raise QuarantineError(f"unknown quarantine item {qid}", 404)
            if item["state"] != "held":
                raise QuarantineError(f"quarantine item {qid} is {item['state']}, not held", 409)
            found = self.payload(item["payload_region"], qid)
            if found is None:
                raise QuarantineError(f"payload of {qid} is missing from {item['payload_region']}", 409)
            topic, payload = found
            routed = self.router.route(topic, payload)
            if routed.rejections:
                problems = "; ".join(f"{r.code}: {r.detail}" for r in routed.rejections)
                raise QuarantineError(f"still rejected under policy {self.router.policy.revision}: {problems}", 409)
            rows: dict[str, int] = {}
            for region, region_rows in routed.rows.items():
                writer = RegionWriter(region, self.settings.region_dsns[region])
                try:
                    writer.write(region_rows)
                finally:
                    writer.close()
                rows[region] = len(region_rows)
            control = ControlWriter(self.settings.control_dsn)
            try:
                batches = {routed.device_id: [(routed.seq, routed.readings)]} if routed.device_id else {}
                control.write(decisions=routed.decisions, rejections=[], batches=batches,  # type: ignore[dict-item]
                              statuses=[])
            finally:
                control.close()
            decisions = [{"category": d.category, "region": d.region, "outcome": d.outcome,
                          "decision_id": str(d.decision_id), "reasons": d.decision.reasons}
                         for d in routed.decisions]
            result = {"rows": rows, "decisions": decisions, "policy_revision": self.router.policy.revision}
            conn.execute(
                "UPDATE rejections SET state = 'released', released_at = now(), released_by = %s,"
                " release_result = %s WHERE quarantine_id = %s",
                (actor, Jsonb(result), qid),
            )
            audit.record(  # same transaction as the state change
                conn, actor=actor, action="quarantine.release", target=f"quarantine:{qid}",
                regions={item["payload_region"], *rows},
                details={"device_id": item["device_id"], "code": item["code"], "rows": rows,
                         "policy_revision": self.router.policy.revision},
            )
        self._forget_payload(item["payload_region"], qid)
        log.info("quarantine item %s released by %s: rows %s", qid, actor, rows)
        return ReleaseResult(qid, actor, self.router.policy.revision, rows, decisions)

    def _forget_payload(self, region: str, qid: uuid.UUID) -> None:
        """The data now lives where the policy puts it; the quarantine copy is deleted."""
        try:
            with psycopg.connect(self.settings.region_dsns[region], connect_timeout=5) as conn:
                conn.execute("DELETE FROM quarantine_payloads WHERE quarantine_id = %s", (qid,))
        except psycopg.Error as exc:
            log.error("released %s but could not delete its quarantine copy in %s: %s", qid, region, exc)
