"""Writes to the control store: decision log, rejections, device progress, gateway status."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.types.json import Jsonb

from ingest.pipeline.router import DecisionRecord, RejectionRecord
from ingest.store.connection import StoreConnection
from ingest.store.sequences import record_batches
from wire import Status

_DECISION = (
    "INSERT INTO decisions (decision_id, device_id, seq, site_id, origin_country, category, region,"
    " destination_country, outcome, allow, localization, requires, transforms, reasons, policy_revision,"
    " readings, input) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (decision_id) DO NOTHING"
)
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


class ControlWriter:
    def __init__(self, dsn: str) -> None:
        self._store = StoreConnection("control", dsn)

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
                    cur.executemany(_DECISION, [
                        (d.decision_id, d.device_id, d.seq, d.site_id, d.origin_country, d.category, d.region,
                         d.destination_country, d.outcome, d.decision.allow, d.decision.localization,
                         Jsonb(d.decision.requires), Jsonb(d.decision.transforms), Jsonb(d.decision.reasons),
                         d.decision.policy_revision, d.readings, Jsonb(d.input))
                        for d in decisions
                    ])
                if rejections:
                    cur.executemany(_REJECTION, [
                        (r.topic, r.device_id, r.seq, r.code, r.detail, r.payload_bytes, r.payload_region is not None,
                         r.quarantine_id, r.category, r.origin_country, r.payload_region, r.state)
                        for r in rejections
                    ])
                new = {device: record_batches(cur, device, items) for device, items in sorted(batches.items())}
                for s in statuses:
                    cur.execute(_STATUS, (s.gateway_id, s.site_id, s.state, s.at, Jsonb(s.devices), s.reason))
        except psycopg.Error as exc:
            raise self._store.error(exc) from None
        return new

    def close(self) -> None:
        self._store.close()
