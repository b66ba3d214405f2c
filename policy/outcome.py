"""What happens to a message-category's values in one candidate region, from the decision about it.

One rule, used by the ingest's router (``ingest.pipeline.router``, for the values it routes) and by the
what-if replay (``policy.whatif``, for a draft's decisions): ``denied`` when the decision does not allow
the flow, else ``transformed`` when transforms apply to the values, else ``stored``.
"""

from __future__ import annotations

from typing import Literal

Outcome = Literal["stored", "transformed", "denied"]


def outcome_of(allow: bool, transformed: bool = False) -> Outcome:
    """``denied`` unless ``allow``; then ``transformed`` when transforms apply to the values, else ``stored``."""
    if not allow:
        return "denied"
    return "transformed" if transformed else "stored"


__all__ = ["Outcome", "outcome_of"]
