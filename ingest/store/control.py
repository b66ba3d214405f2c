"""Writes to the control store: decision log, rejections, device progress, gateway status.

The decision log holds one row per *distinct decision* per write (ingest.decision_ids): the messages of a flush
that one device's category got in one region under one document share a row, which lists their sequence numbers
and readings (migration ``0020_decision_groups.sql``; the view ``decisions`` unnests them into one row per message
as before), all of a write in one statement. A redelivered message whose decision is logged already is left out:
the statement removes the seqs a row of the same decision already covers (one primary-key probe per distinct
decision), under a per-device advisory lock so that two writers logging the same message cannot both miss the
other's row: exclusive for a device with a redelivered message, shared for one whose messages this replica claimed
first (the common case, where replicas and workers never wait for each other). The documents a decision names
(policy input, reasons, ...) are stored once each in ``decision_docs`` (``ingest.store.decision_docs``), inserted in
the same transaction before the first decision that names them; the view ``decisions`` joins them back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Sequence
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
# keys collide), exclusive where any message of the device may have been logged before (a redelivery), shared where
# every one was claimed first by this replica: first claims never wait for each other (replicas and workers log the
# same devices all the time), a redelivery waits for every write of its device in progress and they for it. A
# namespace apart from the sequence claims' ("seq:"), which are taken in another transaction.
_LOCK_DEVICES = (
    "SELECT count(CASE WHEN x THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END) FROM"
    " (SELECT hashtext('log:' || d) AS k, bool_or(x) AS x FROM unnest(%b::text[], %b::bool[]) AS t(d, x)"
    " GROUP BY 1 ORDER BY 1) AS keys"
)
# The distinct decisions of this write (g, one element per decision in each array) and their messages (one element
# per message: the decision's position in g, the seq, the readings), less the messages a row of the same decision
# covers already (a redelivery: the rows of that decision whose seq range meets this one's, found by the primary key;
# none when messages arrive in order). One statement per write, whatever the number of decisions.
_LOG_DECISIONS = """
WITH g AS (
    SELECT * FROM unnest(%(ids)b::uuid[], %(devices)b::text[], %(sites)b::text[], %(origins)b::text[],
                         %(categories)b::text[], %(regions)b::text[], %(destinations)b::text[], %(outcomes)b::text[],
                         %(docs)b::uuid[], %(firsts)b::int8[], %(lasts)b::int8[])
        WITH ORDINALITY AS g(id, device, site, origin, category, region, destination, outcome, doc, first, last, n)
), logged AS (
    SELECT g.n, unnest(l.seqs) AS s
    FROM g JOIN decision_log l ON l.decision_id = g.id AND l.last_seq >= g.first AND l.first_seq <= g.last
), m AS (
    SELECT t.n, t.s, t.r FROM unnest(%(members)b::int8[], %(seqs)b::int8[], %(readings)b::int4[]) AS t(n, s, r)
    WHERE NOT EXISTS (SELECT 1 FROM logged WHERE logged.n = t.n AND logged.s = t.s)
)
INSERT INTO decision_log (decision_id, last_seq, first_seq, device_id, site_id, origin_country, category, region,
                          destination_country, outcome, doc_id, seqs, readings)
SELECT g.id, max(m.s), min(m.s), g.device, g.site, g.origin, g.category, g.region, g.destination, g.outcome, g.doc,
       array_agg(m.s ORDER BY m.s), array_agg(m.r ORDER BY m.s)
FROM m JOIN g USING (n)
GROUP BY g.n, g.id, g.device, g.site, g.origin, g.category, g.region, g.destination, g.outcome, g.doc
RETURNING decision_id, cardinality(seqs)
"""


# The parameters of _LOG_DECISIONS that hold one element per distinct decision, and the record field of each.
_DECISION_COLUMNS = {
    "ids": "decision_id",
    "devices": "device_id",
    "sites": "site_id",
    "origins": "origin_country",
    "categories": "category",
    "regions": "region",
    "destinations": "destination_country",
    "outcomes": "outcome",
    "docs": "doc_id",
}


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


def _decision_groups(decisions: Sequence[DecisionRecord], docs: DocRows) -> dict[str, list[Any]]:
    """The parameters of ``_LOG_DECISIONS``: the distinct decisions of ``decisions`` and their messages (seqs
    ascending, each once). The documents not known to be committed are added to ``docs``."""
    groups: dict[uuid.UUID, tuple[DecisionRecord, dict[int, int]]] = {}
    for d in decisions:
        found = groups.get(d.decision_id)
        if found is None:
            groups[d.decision_id] = (d, {d.seq: d.readings})
            docs.need(d.doc_id, d.decision, d.input)
        else:
            found[1][d.seq] = d.readings
    extra = ("firsts", "lasts", "members", "seqs", "readings")
    params: dict[str, list[Any]] = {name: [] for name in (*_DECISION_COLUMNS, *extra)}
    for n, (d, messages) in enumerate(groups.values(), 1):
        for name, field in _DECISION_COLUMNS.items():
            params[name].append(getattr(d, field))
        seqs = sorted(messages)
        params["firsts"].append(seqs[0])
        params["lasts"].append(seqs[-1])
        params["members"] += [n] * len(seqs)
        params["seqs"] += seqs
        params["readings"] += [messages[s] for s in seqs]
    return params


@dataclass(frozen=True, slots=True)
class ControlRecords:
    """The control records of one message (its decisions and rejections) or one gateway status."""

    decisions: Sequence[DecisionRecord] = ()
    rejections: Sequence[RejectionRecord] = ()
    statuses: Sequence[Status] = ()
    redelivered: bool = True
    """The message's decisions may have been logged already (``ingest.pipeline.router.Routed.redelivered``)."""


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
        first_claims: Collection[str] = (),
    ) -> dict[str, list[int]]:
        """Commit everything in one transaction; return, per device, the batch seqs seen for the first time.

        ``batches``: device -> [(seq, readings)] of the valid batches received. ``first_claims``: devices all of whose
        messages among ``decisions`` this replica claimed first (never logged before, not being logged by another
        writer): their lock is shared; every other device's is exclusive.
        """
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if decisions:
                    groups = _decision_groups(decisions, self._docs)
                    devices = list(set(groups["devices"]))
                    cur.execute(_LOCK_DEVICES, (devices, [d not in first_claims for d in devices]))
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
            again = {d.device_id for g in some if g.redelivered for d in g.decisions}
            self.write(
                decisions=[d for g in some for d in g.decisions],
                rejections=[r for g in some for r in g.rejections],
                batches={},
                statuses=[s for g in some for s in g.statuses],
                first_claims={d.device_id for g in some for d in g.decisions} - again,
            )
            return len(some)

        return write_isolated("control", write, groups)

    def _log_decisions(self, cur: psycopg.Cursor, groups: dict[str, list[Any]]) -> None:
        written: dict[uuid.UUID, int] = dict(cur.execute(_LOG_DECISIONS, groups))
        messages = Counter(groups["members"])  # per distinct decision (its position, from 1)
        self.logged += len(written)
        self.merges += len([1 for n, did in enumerate(groups["ids"], 1) if written.get(did, 0) < messages[n]])

    def close(self) -> None:
        self._store.close()
