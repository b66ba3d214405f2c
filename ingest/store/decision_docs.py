"""The documents of logged decisions (control store table ``decision_docs``), written once per content.

A logged decision names its document (the policy input and the policy's answer) by ``doc_id``, a uuid5
of the document's canonical JSON. The router shares one input dict and one ``Decision`` per flow among
all the messages of that flow, so ids are memoised by object identity (the objects are kept referenced,
so an id is never reused while cached); a document the writer knows to be committed is not sent again.
See migration ``0006_decision_docs.sql``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from policy.models import Decision

_DOC_NS = uuid.UUID("0b5e7a4c-2f8e-5c1d-9a6b-3d4e5f607182")

DOC_COLS = "doc_id, allow, localization, requires, transforms, reasons, policy_revision, input"
DOC_TYPES = ["uuid", "bool", "text", "jsonb", "jsonb", "jsonb", "text", "jsonb"]
INSERT_DOCS = (
    f"INSERT INTO decision_docs ({DOC_COLS}) VALUES ({', '.join(f'%s::{t}' for t in DOC_TYPES)})"
    " ON CONFLICT (doc_id) DO NOTHING"
)

Doc = tuple[uuid.UUID, bool, str, str, str, str, str, str]
"""A row of ``decision_docs``: the id, then the columns, JSON as compact text."""


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def doc_row(decision: Decision, policy_input: dict[str, Any]) -> Doc:
    """The document's row, its id the uuid5 of the canonical (sorted keys) JSON of every column."""
    canonical = json.dumps(
        [
            decision.allow,
            decision.localization,
            decision.requires,
            decision.transforms,
            decision.reasons,
            decision.policy_revision,
            policy_input,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return (
        uuid.uuid5(_DOC_NS, canonical),
        decision.allow,
        decision.localization,
        _json(decision.requires),
        _json(decision.transforms),
        _json(decision.reasons),
        decision.policy_revision,
        _json(policy_input),
    )


class DocIds:
    """Per writer: the document id of a (decision, input) pair, and which documents are committed.

    ``lookup`` memoises by the identity of the two objects; ``pending`` collects the documents of the
    current transaction that are not known to be committed; ``committed()`` / ``rolled_back()`` end it.
    Both maps are bounded: past ``limit`` entries they are cleared (the cost is recomputing a hash and
    re-sending a document that ``ON CONFLICT DO NOTHING`` then ignores)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._by_identity: dict[tuple[int, int], tuple[Decision, dict[str, Any], uuid.UUID]] = {}
        self._committed: set[uuid.UUID] = set()
        self._pending: dict[uuid.UUID, Doc] = {}

    def lookup(self, decision: Decision, policy_input: dict[str, Any]) -> uuid.UUID:
        key = (id(decision), id(policy_input))
        hit = self._by_identity.get(key)
        if hit is not None:
            doc_id = hit[2]
            if doc_id not in self._committed and doc_id not in self._pending:
                self._pending[doc_id] = doc_row(decision, policy_input)
            return doc_id
        row = doc_row(decision, policy_input)
        doc_id = row[0]
        if len(self._by_identity) >= self._limit:
            self._by_identity.clear()
        self._by_identity[key] = (decision, policy_input, doc_id)
        if doc_id not in self._committed:
            self._pending[doc_id] = row
        return doc_id

    def pending(self) -> list[Doc]:
        """The documents to insert before the decisions that name them, sorted by id (concurrent writers
        insert shared documents in one order, so they cannot deadlock on each other's)."""
        return sorted(self._pending.values(), key=lambda doc: doc[0])

    def committed(self) -> None:
        if len(self._committed) + len(self._pending) > self._limit:
            self._committed.clear()
        self._committed.update(self._pending)
        self._pending.clear()

    def rolled_back(self) -> None:
        self._pending.clear()
