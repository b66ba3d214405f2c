"""The ids of the audit trail: a decision's *document* and a *distinct decision* (docs/audit-log.md).

- A **document** (control store ``decision_docs``) is what the policy was asked and answered: the policy input,
  the decision's allow / localization / requires / transforms / reasons and its revision. Its id is the uuid5 of
  its canonical JSON, so every writer (replica, worker, cell) gives the same document the same id.
- A **distinct decision** is one device's category placed in one candidate region one way (the outcome) under
  one document. Its id is the uuid5 of those five; every region row it placed carries it
  (``ingest.records.Row.decision_id``) and the decision log holds one row per distinct decision per flush with
  the messages it covered. Deterministic: a redelivered message gets the same id.

Both are computed on the hot path (several per message), so :class:`DecisionIds` memoises them: documents by the
identity of the (decision, input) pair (the router shares one of each per flow), decision ids by their five
parts.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from ingest.records import ID_NAMESPACE
from policy.models import Decision

DOC_NAMESPACE = uuid.UUID("0b5e7a4c-2f8e-5c1d-9a6b-3d4e5f607182")
"""Namespace of the documents' ids."""

_DECISION_NS_BYTES = ID_NAMESPACE.bytes
# uuid.UUID(bytes=..., version=5) without its __init__ (argument checks in Python: 4 us of a decision's 9): the same
# bits set the same way, the instance filled through object.__setattr__ as UUID.__init__ itself does.
_CLEAR_VERSION_VARIANT = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION5_RFC4122 = (5 << 76) | (0x8000 << 48)
_new_object = object.__new__
_set_attr = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_UUID = uuid.UUID


def _uuid5(namespace: bytes, name: str) -> uuid.UUID:
    """``uuid.uuid5`` spelled out: the same value in a third of the time."""
    digest = hashlib.sha1(namespace + name.encode()).digest()
    value = _new_object(_UUID)
    _set_attr(value, "int", (int.from_bytes(digest[:16]) & _CLEAR_VERSION_VARIANT) | _VERSION5_RFC4122)
    _set_attr(value, "is_safe", _SAFE_UNKNOWN)
    return value


def decision_id(device_id: str, category: str, region: str, outcome: str, doc_id: uuid.UUID) -> uuid.UUID:
    """The id of a distinct decision: uuid5 (namespace :data:`ingest.records.ID_NAMESPACE`) of
    ``device/category/region/outcome/doc_id``."""
    return _uuid5(_DECISION_NS_BYTES, f"{device_id}/{category}/{region}/{outcome}/{doc_id}")


def canonical_doc(decision: Decision, policy_input: dict[str, Any]) -> str:
    """The document as canonical JSON (sorted keys, compact): what its id hashes."""
    return json.dumps(
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


def doc_id(decision: Decision, policy_input: dict[str, Any]) -> uuid.UUID:
    """The document's id: uuid5 (namespace :data:`DOC_NAMESPACE`) of its canonical JSON."""
    return uuid.uuid5(DOC_NAMESPACE, canonical_doc(decision, policy_input))


class DecisionIds:
    """Memoised ids for one router (one thread). Both maps are bounded: past ``limit`` entries they are cleared (the
    cost is recomputing a hash)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        # the pair is kept referenced by the entry, so its ids are not reused while it is cached
        self._docs: dict[tuple[int, int], tuple[Decision, dict[str, Any], uuid.UUID]] = {}
        self._decisions: dict[tuple[str, str, str, str, uuid.UUID], uuid.UUID] = {}

    def doc_id(self, decision: Decision, policy_input: dict[str, Any]) -> uuid.UUID:
        key = (id(decision), id(policy_input))
        hit = self._docs.get(key)
        if hit is not None:
            return hit[2]
        found = doc_id(decision, policy_input)
        if len(self._docs) >= self._limit:
            self._docs.clear()
        self._docs[key] = (decision, policy_input, found)
        return found

    def of(
        self, device_id: str, category: str, region: str, outcome: str, decision: Decision, policy_input: dict[str, Any]
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """(distinct decision id, document id)."""
        doc = self.doc_id(decision, policy_input)
        key = (device_id, category, region, outcome, doc)
        found = self._decisions.get(key)
        if found is None:
            found = decision_id(device_id, category, region, outcome, doc)
            if len(self._decisions) >= self._limit:
                self._decisions.clear()
            self._decisions[key] = found
        return found, doc
