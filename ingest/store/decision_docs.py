"""The documents of logged decisions (control store table ``decision_docs``), written once per content.

A logged decision names its document (the policy input and the policy's answer) by ``doc_id``, a uuid5
of the document's canonical JSON (:mod:`ingest.decision_ids`, computed by the router); a document the writer
knows to be committed is not sent again. See migrations ``0006_decision_docs.sql`` and
``0020_decision_groups.sql``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from policy.models import Decision

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


def doc_row(doc: uuid.UUID, decision: Decision, policy_input: dict[str, Any]) -> Doc:
    """The document's row; ``doc`` its id (:func:`ingest.decision_ids.doc_id`, computed by the router)."""
    return (
        doc,
        decision.allow,
        decision.localization,
        _json(decision.requires),
        _json(decision.transforms),
        _json(decision.reasons),
        decision.policy_revision,
        _json(policy_input),
    )


class DocRows:
    """Per writer: which documents are committed, and those the current transaction must insert.

    ``need`` adds a document not known to be committed; ``pending`` lists them; ``committed()`` /
    ``rolled_back()`` end the transaction. The committed set is bounded: past ``limit`` ids it is cleared (the
    cost is re-sending a document that ``ON CONFLICT DO NOTHING`` then ignores)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._committed: set[uuid.UUID] = set()
        self._pending: dict[uuid.UUID, Doc] = {}

    def need(self, doc: uuid.UUID, decision: Decision, policy_input: dict[str, Any]) -> None:
        if doc not in self._committed and doc not in self._pending:
            self._pending[doc] = doc_row(doc, decision, policy_input)

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
