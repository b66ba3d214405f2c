"""Writes to the control store: decision log, rejections, device progress, gateway status.

The decision log holds one row per *distinct decision* per write (ingest.decision_ids): the messages of a flush
that one device's category got in one region under one document share a row, which lists their sequence numbers
and readings (migration ``0020_decision_groups.sql``; the view ``decisions`` unnests them into one row per message
as before). A redelivered message whose decision is logged already is left out of the row: the statement removes
the seqs a row of the same decision already covers (one primary-key probe per row), under a per-device advisory
lock so that two replicas logging the same redelivery cannot both miss the other's. The documents a decision names
(policy input, reasons, ...) are stored once each in ``decision_docs`` (``ingest.store.decision_docs``), inserted in
the same transaction before the first decision that names them; the view ``decisions`` joins them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.records import DecisionRecord, RejectionRecord
from ingest.store.connection import ENCODING_ERRORS, StoreConnection
from ingest.store.decision_docs import INSERT_DOCS, DocRows
from ingest.store.isolation import GroupsWritten, write_isolated
from ingest.store.sequences import record_all
from wire import Status

# The devices' locks, taken in the order of their keys (no two writers can deadlock on them, even when two devices'
# keys collide); a namespace apart from the sequence claims' ("seq:"), which are taken in another transaction.
_LOCK_DEVICES = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM"
    " (SELECT DISTINCT hashtext('log:' || d) AS k FROM unnest(%s::text[]) AS d ORDER BY k) AS keys"
)
# One distinct decision's messages of this write, less those a row of the same decision covers already (a
# redelivery): rows of that decision whose seq range meets this one's, found by the primary key.
_LOG_DECISION = """
INSERT INTO decision_log (decision_id, last_seq, first_seq, device_id, site_id, origin_country, category, region,
                          destination_country, outcome, doc_id, seqs, readings)
SELECT %(id)s, max(t.s), min(t.s), %(device)s, %(site)s, %(origin)s, %(category)s, %(region)s, %(destination)s,
       %(outcome)s, %(doc)s, array_agg(t.s ORDER BY t.s), array_agg(t.r ORDER BY t.s)
FROM unnest(%(seqs)s::int8[], %(readings)s::int4[]) AS t(s, r)
WHERE t.s NOT IN (SELECT unnest(l.seqs) FROM decision_log l
                  WHERE l.decision_id = %(id)s AND l.last_seq >= %(first)s AND l.first_seq <= %(last)s)
HAVING count(*) > 0
RETURNING cardinality(seqs)
"""
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


def _decision_groups(decisions: Sequence[DecisionRecord], docs: DocRows) -> list[dict[str, Any]]:
    """One parameter set of ``_LOG_DECISION`` per distinct decision: its messages' seqs (ascending, each once) and
    readings. The documents not known to be committed are added to ``docs``."""
    groups: dict[uuid.UUID, tuple[DecisionRecord, dict[int, int]]] = {}
    for d in decisions:
        found = groups.get(d.decision_id)
        if found is None:
            groups[d.decision_id] = (d, {d.seq: d.readings})
            docs.need(d.doc_id, d.decision, d.input)
        else:
            found[1][d.seq] = d.readings
    params: list[dict[str, Any]] = []
    for d, messages in groups.values():
        seqs = sorted(messages)
        params.append(
            {
                "id": d.decision_id,
                "device": d.device_id,
                "site": d.site_id,
                "origin": d.origin_country,
                "category": d.category,
                "region": d.region,
                "destination": d.destination_country,
                "outcome": d.outcome,
                "doc": d.doc_id,
                "seqs": seqs,
                "readings": [messages[s] for s in seqs],
                "first": seqs[0],
                "last": seqs[-1],
            }
        )
    return params


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
        self._docs = DocRows()
        self.merges = 0
        """Distinct decisions of a write of which some messages were logged already (redeliveries): left out."""
        self.logged = 0
        """Decision-log rows written (one per distinct decision per write)."""
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
                    groups = _decision_groups(decisions, self._docs)
                    cur.execute(_LOCK_DEVICES, (list({g["device"] for g in groups}),))
                    docs = self._docs.pending()
                    if docs:
                        cur.executemany(INSERT_DOCS, docs)
                        self.docs_written += len(docs)
                    self._log_decisions(cur, groups)
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

    def _log_decisions(self, cur: psycopg.Cursor, groups: list[dict[str, Any]]) -> None:
        cur.executemany(_LOG_DECISION, groups, returning=True)
        merges = written = 0
        for group in groups:
            row = cur.fetchone()
            logged = row[0] if row is not None else 0
            written += row is not None
            merges += logged < len(group["seqs"])
            cur.nextset()
        self.logged += written
        self.merges += merges

    def close(self) -> None:
        self._store.close()
