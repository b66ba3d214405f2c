"""Residency policy: Rego rules and data owned by compliance officers, and the engines that evaluate them.

>>> from policy import Flow, load_engine
>>> engine = load_engine("embedded")
>>> engine.decide(Flow(origin="DE", destination="US", category="machine")).allow
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from policy.cache import CachedPolicyEngine
from policy.engine import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, PolicyEngine, compute_revision
from policy.errors import (
    PolicyDraftError,
    PolicyError,
    PolicyEvaluationError,
    PolicyInputError,
    PolicyLoadError,
    PolicyUnavailableError,
)
from policy.models import Decision, Flow
from policy.opa_client import OpaPolicyEngine


def load_engine(
    kind: Literal["embedded", "opa"] = "embedded",
    policy_dir: Path | None = None,
    opa_url: str | None = None,
    cache_size: int = 4096,
) -> PolicyEngine:
    """An engine of the given kind, wrapped in an LRU cache unless ``cache_size`` is 0."""
    engine: PolicyEngine
    if kind == "embedded":
        engine = EmbeddedPolicyEngine.from_dir(Path(policy_dir) if policy_dir else DEFAULT_POLICY_DIR)
    elif kind == "opa":
        if not opa_url:
            raise PolicyLoadError("kind 'opa' needs opa_url (e.g. http://127.0.0.1:8181)")
        engine = OpaPolicyEngine(opa_url)
    else:
        raise PolicyLoadError(f"unknown policy engine kind {kind!r} (expected 'embedded' or 'opa')")
    if cache_size < 0:
        raise ValueError("cache_size must be >= 0")
    return CachedPolicyEngine(engine, maxsize=cache_size) if cache_size else engine


__all__ = [
    "DEFAULT_POLICY_DIR",
    "CachedPolicyEngine",
    "Decision",
    "EmbeddedPolicyEngine",
    "Flow",
    "OpaPolicyEngine",
    "PolicyDraftError",
    "PolicyEngine",
    "PolicyError",
    "PolicyEvaluationError",
    "PolicyInputError",
    "PolicyLoadError",
    "PolicyUnavailableError",
    "compute_revision",
    "load_engine",
]
