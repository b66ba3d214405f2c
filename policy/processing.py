"""Where a site's raw payload may be processed: the ``data.residency.raw_processing`` document.

The Rego decides (``policy/rego/residency/processing.rego``); this module builds its input and reads its
answer, for the residency cells' topology check (:mod:`ingest.cells.topology`, docs/cells.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from policy.errors import PolicyEvaluationError

RAW_PROCESSING_PATH = "residency/raw_processing"


class DocumentEngine(Protocol):
    """A policy engine that can evaluate another document than the decision (every engine of ours can)."""

    def document(self, path: str, value: Any) -> Any: ...


class CategoryVerdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    allow: bool
    localization: str
    reasons: list[str]


class RawProcessing(BaseModel):
    """The answer: may the raw payload be processed in that country, why, per category."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    allow: bool
    reasons: list[str]
    categories: dict[str, CategoryVerdict]
    policy_revision: str


def raw_processing(
    engine: DocumentEngine,
    *,
    origin: str,
    processing_country: str,
    categories: Sequence[str],
    flow: dict[str, Any] | None = None,
) -> RawProcessing:
    """Ask the policy whether a raw payload holding ``categories`` from ``origin`` may be processed in
    ``processing_country``. ``flow``: the other fields of the decision contract (safeguards in force for that
    country, recipient, entity, purpose, volume)."""
    request = {
        **(flow or {}),
        "origin": origin,
        "processing_country": processing_country,
        "categories": sorted(set(categories)),
    }
    answer = engine.document(RAW_PROCESSING_PATH, request)
    try:
        return RawProcessing.model_validate(answer)
    except ValidationError as exc:
        raise PolicyEvaluationError(
            f"data.residency.raw_processing does not match its contract: {exc.errors()[0]}"
        ) from exc
