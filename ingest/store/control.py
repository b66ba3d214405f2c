"""Writes to the control store: decision log, rejections, device progress, gateway status.

The decision log is the bulk of it (one row per message x category x candidate region). Its rows are
written like the region rows: binary ``COPY`` into ``decision_log`` inside a savepoint, falling back to
``INSERT ... ON CONFLICT DO NOTHING`` when a redelivered message brings a decision already logged (the
decision id is deterministic). The documents a decision carries (policy input, reasons, ...) are those of
its flow: each is stored once in ``decision_docs`` (``ingest.store.decision_docs``), inserted in the same
transaction before the first decision that names it; the view ``decisions`` joins them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from ingest.records import DecisionRecord, RejectionRecord
from ingest.store.connection import ENCODING_ERRORS, StoreConnection
from ingest.store.decision_docs import INSERT_DOCS, DocIds
from ingest.store.isolation import GroupsWritten, write_isolated
from ingest.store.sequences import record_all
from wire import Status

_DECISION_COLS = (
    "decision_id, device_id, seq, site_id, origin_country, category, region, destination_country, outcome, readings,"
    " doc_id"
)
_DECISION_TYPES = ["uuid", "text", "int8", "text", "text", "text", "text", "text", "text", "int4", "uuid"]
_DECISION = (
    f"INSERT INTO decision_log ({_DECISION_COLS}) VALUES ({', '.join(['%s'] * len(_DECISION_TYPES))})"
    " ON CONFLICT (decision_id) DO NOTHING"
)
_DECISION_COPY = f"COPY decision_log ({_DECISION_COLS}) FROM STDIN (FORMAT BINARY)"
_REJECTION = (
    "INSERT INTO rejections (topic, device_id, seq, code, detail, payload_bytes, payload_kept, quarantine_id,"
    " category, origin_country, payload_region, state) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (quarantine_id) DO NOTHING"
)
_STATUS = (
    "INSERT INTO gateway_status (gateway_id, site_id, state, at, devices, reason) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (gateway_id) DO UPDATE SET site_id = EXCLUDED.site_id, state = EXCLUDED.state,"
    " at = EXCLUDED.at, devices = EXCLUDED.devices, reason = EXCLUDED.reason"
    # a row dated in the future (before statuses were checked against the clock) must not freeze the gateway
    " WHERE gateway_status.at <= EXCLUDED.at OR gateway_status.at > now() + make_interval(secs => %s)"
)


def _decision_rows(decisions: Sequence[DecisionRecord], docs: DocIds) -> list[tuple[object, ...]]:
    lookup = docs.lookup
    return [
        (
            d.decision_id,
            d.device_id,
            d.seq,
            d.site_id,
            d.origin_country,
            d.category,
            d.region,
            d.destination_country,
            d.outcome,
            d.readings,
            lookup(d.decision, d.input),
        )
        for d in decisions
    ]


@dataclass(frozen=True, slots=True)
class ControlRecords:
    """The control records of one message (its decisions and rejections) or one gateway status."""

    decisions: Sequence[DecisionRecord] = ()
    rejections: Sequence[RejectionRecord] = ()
    statuses: Sequence[Status] = ()


class ControlWriter:
    def __init__(self, dsn: str, *, max_clock_skew_s: float = 300.0) -> None:
        self._max_skew_s = max_clock_skew_s
        self._store = StoreConnection("control", dsn)
        self._docs = DocIds()
        self.merges = 0
        """Writes whose decisions were partly logged already (redeliveries): they took the INSERT path."""
        self.docs_written = 0
        """Decision documents sent to the store (new flows, policy revisions, registry changes)."""

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
                    rows = _decision_rows(decisions, self._docs)
                    docs = self._docs.pending()
                    if docs:
                        cur.executemany(INSERT_DOCS, docs)
                        self.docs_written += len(docs)
                    self._log_decisions(conn, cur, rows)
                if rejections:
                    cur.executemany(
                        _REJECTION,
                        [
                            (
                                r.topic,
                                r.device_id,
                                r.seq,
                                r.code,
                                r.detail,
                                r.payload_bytes,
                                r.payload_region is not None,
                                r.quarantine_id,
                                r.category,
                                r.origin_country,
                                r.payload_region,
                                r.state,
                            )
                            for r in rejections
                        ],
                    )
                new = record_all(conn, batches)
                for s in statuses:
                    cur.execute(
                        _STATUS, (s.gateway_id, s.site_id, s.state, s.at, Jsonb(s.devices), s.reason, self._max_skew_s)
                    )
        except BaseException as exc:
            self._docs.rolled_back()  # the documents of a failed transaction must be sent again
            if isinstance(exc, (psycopg.Error, *ENCODING_ERRORS)):
                raise self._store.error(exc) from None
            raise
        self._docs.committed()
        return new

    def write_groups(self, groups: Sequence[ControlRecords]) -> GroupsWritten:
        """Commit several messages' records in one transaction; if the store refuses the data, find the messages
        at fault by writing each in its own transaction (ingest.store.isolation)."""

        def write(some: Sequence[ControlRecords]) -> int:
            self.write(
                decisions=[d for g in some for d in g.decisions],
                rejections=[r for g in some for r in g.rejections],
                batches={},
                statuses=[s for g in some for s in g.statuses],
            )
            return len(some)

        return write_isolated("control", write, groups)

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
