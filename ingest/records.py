"""What the pipeline produces and the stores write: region rows, decision records, rejection records.

Its own module, below both: the router (:mod:`ingest.pipeline.router`) builds these records and the store layer
(:mod:`ingest.store`) writes them, and the store never imports the pipeline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from policy import Decision

ID_NAMESPACE = uuid.UUID("6f1c7f7e-3c38-4bb5-9f0e-2f5a5a1d6c11")
"""Namespace of the deterministic decision ids and quarantine ids."""


class Row(NamedTuple):
    """One value of one reading as a region table holds it (``readings``). Its fields are the table's columns in
    COPY order (:data:`ingest.store.region.COLUMNS`); it goes to binary COPY as the tuple it is.

    Built on the hot path (one per value): construct it positionally, ``Row(a, b, ...)``, or ``Row._make``."""

    device_id: str
    seq: int
    idx: int
    name: str
    ts: datetime
    site_id: str
    origin_country: str
    category: str
    num: float | None
    txt: str | None
    transform: str | None
    decision_id: uuid.UUID
    policy_revision: str


MAX_DETAIL = 2000
"""Longest rejection detail kept (it quotes untrusted input)."""


def printable(text: str, limit: int = MAX_DETAIL) -> str:
    """Untrusted text made safe to store and log: control characters escaped (PostgreSQL's text cannot hold a
    NUL), at most ``limit`` characters."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class RejectionRecord:
    """A quarantined message or part: always its metadata; its payload only where it may lawfully live."""

    topic: str
    code: str
    detail: str
    payload_bytes: int
    device_id: str | None = None
    seq: int | None = None
    quarantine_id: uuid.UUID | None = None
    origin_country: str | None = None
    category: str | None = None
    payload_region: str | None = None  # None: metadata only, the payload is discarded
    payload: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", printable(self.detail))
        object.__setattr__(self, "topic", printable(self.topic, 1024))

    @property
    def state(self) -> str:
        return "held" if self.payload_region is not None else "discarded"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x (hot path, several per message)
class DecisionRecord:
    """One message's category in one candidate region, as decided. ``decision_id`` is the *distinct* decision
    (:mod:`ingest.decision_ids`), shared by every message decided the same way; ``doc_id`` its document."""

    decision_id: uuid.UUID
    device_id: str
    seq: int
    site_id: str
    origin_country: str
    category: str
    region: str
    destination_country: str
    outcome: str  # stored | transformed | denied
    decision: Decision
    readings: int
    input: dict[str, Any]
    doc_id: uuid.UUID
