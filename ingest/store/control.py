"""Writes to the control store: decision log, rejections, device progress, gateway status.

The decision log is the bulk of it (one row per message x category x candidate region). Its rows are
written like the region rows: binary ``COPY`` inside a savepoint, falling back to
``INSERT ... ON CONFLICT DO NOTHING`` when a redelivered message brings a decision already logged (the
decision id is deterministic). The JSON columns repeat the same few documents (the router shares one
policy input and one decision object per flow), so each distinct object is encoded once per flush.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.pipeline.router import DecisionRecord, RejectionRecord
from ingest.store.connection import StoreConnection
from ingest.store.sequences import record_all
from wire import Status

_DECISION_COLS = (
    "decision_id, device_id, seq, site_id, origin_country, category, region, destination_country, outcome, allow,"
    " localization, requires, transforms, reasons, policy_revision, readings, input"
)
_DECISION_TYPES = ["uuid", "text", "int8", "text", "text", "text", "text", "text", "text", "bool", "text", "jsonb",
                   "jsonb", "jsonb", "text", "int4", "jsonb"]
_DECISION = (
    f"INSERT INTO decisions ({_DECISION_COLS}) VALUES ({', '.join(['%s'] * len(_DECISION_TYPES))})"
    " ON CONFLICT (decision_id) DO NOTHING"
)
_DECISION_COPY = f"COPY decisions ({_DECISION_COLS}) FROM STDIN (FORMAT BINARY)"
_REJECTION = (
    "INSERT INTO rejections (topic, device_id, seq, code, detail, payload_bytes, payload_kept, quarantine_id,"
    " category, origin_country, payload_region, state) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (quarantine_id) DO NOTHING"
)
_STATUS = (
    "INSERT INTO gateway_status (gateway_id, site_id, state, at, devices, reason) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (gateway_id) DO UPDATE SET site_id = EXCLUDED.site_id, state = EXCLUDED.state,"
    " at = EXCLUDED.at, devices = EXCLUDED.devices, reason = EXCLUDED.reason"
    " WHERE gateway_status.at <= EXCLUDED.at"
)


def _identity(text: Any) -> str:
    return text  # type: ignore[no-any-return]


class _JsonOnce:
    """``Jsonb`` parameters encoded once per distinct object (by identity, for the duration of one write)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[object, Jsonb]] = {}

    def __call__(self, obj: object) -> Jsonb:
        hit = self._seen.get(id(obj))
        if hit is None:  # keep obj referenced so its id is not reused while cached
            hit = (obj, Jsonb(json.dumps(obj, separators=(",", ":")), dumps=_identity))
            self._seen[id(obj)] = hit
        return hit[1]


def _decision_rows(decisions: Sequence[DecisionRecord], jsonb: Callable[[object], Jsonb]) -> list[tuple[object, ...]]:
    return [
        (d.decision_id, d.device_id, d.seq, d.site_id, d.origin_country, d.category, d.region,
         d.destination_country, d.outcome, d.decision.allow, d.decision.localization,
         jsonb(d.decision.requires), jsonb(d.decision.transforms), jsonb(d.decision.reasons),
         d.decision.policy_revision, d.readings, jsonb(d.input))
        for d in decisions
    ]


class ControlWriter:
    def __init__(self, dsn: str) -> None:
        self._store = StoreConnection("control", dsn)
        self.merges = 0
        """Writes whose decisions were partly logged already (redeliveries): they took the INSERT path."""

    def write(
        self,
        *,
        decisions: Sequence[DecisionRecord],
        rejections: Sequence[RejectionRecord],
        batches: dict[str, list[tuple[int, int]]],
        statuses: Sequence[Status],
    ) -> dict[str, list[int]]:
        """Commit everything in one transaction; return, per device, the batch seqs seen for the first time.

        ``batches``: device -> [(seq, readings)] of the valid batches received.
        """
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if decisions:
                    self._log_decisions(conn, cur, _decision_rows(decisions, _JsonOnce()))
                if rejections:
                    cur.executemany(_REJECTION, [
                        (r.topic, r.device_id, r.seq, r.code, r.detail, r.payload_bytes, r.payload_region is not None,
                         r.quarantine_id, r.category, r.origin_country, r.payload_region, r.state)
                        for r in rejections
                    ])
                new = record_all(conn, batches)
                for s in statuses:
                    cur.execute(_STATUS, (s.gateway_id, s.site_id, s.state, s.at, Jsonb(s.devices), s.reason))
        except psycopg.Error as exc:
            raise self._store.error(exc) from None
        return new

    def _log_decisions(self, conn: psycopg.Connection, cur: psycopg.Cursor, rows: list[tuple[object, ...]]) -> None:
        try:
            # a savepoint: a decision logged before undoes only the COPY
            with conn.transaction(), cur.copy(_DECISION_COPY) as copy:
                copy.set_types(_DECISION_TYPES)
                for row in rows:
                    copy.write_row(row)
            return
        except psycopg.errors.UniqueViolation:
            self.merges += 1
        cur.executemany(_DECISION, rows)

    def close(self) -> None:
        self._store.close()
