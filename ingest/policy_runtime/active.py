"""Holding the active policy: what the router asks, swapped as a whole when a revision is activated.

:class:`ActivePolicy` is a :class:`policy.PolicyEngine` that delegates to the current cached engine.
Activation swaps one immutable :class:`ActiveState` reference (atomic for readers: the next decision uses
the new engine; a decision in flight finishes on the old one) and every new state has a new, empty
decision cache. In OPA mode it can be *held*: decisions wait until a revision that keeps the platform's
invariants is served.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.store.policy_activations import Source
from policy import CachedPolicyEngine, Decision, Flow, PolicyEngine
from policy.errors import PolicyUnavailableError


@dataclass(frozen=True)
class ActiveState:
    """One activated policy: never mutated, replaced as a whole."""

    engine: PolicyEngine  # what decides: a CachedPolicyEngine around ``inner`` (or ``inner`` if cache_size=0)
    inner: PolicyEngine
    revision: str
    kind: str
    source: Source
    activated_by: str
    loaded_at: datetime


class ActivePolicy:
    """The policy engine the router holds: delegates to the current state's engine.

    It can be *held* (OPA mode: OPA serves a bundle revision that breaks a platform invariant): then every
    decision waits until the hold is released (a revision that keeps the invariants) or the policy is
    closed (shutdown: :class:`PolicyUnavailableError`). Nothing is decided meanwhile, so nothing is routed
    or acknowledged: the broker keeps the messages."""

    def __init__(self, state: ActiveState) -> None:
        self._state = state
        self._held: str | None = None
        self._closed = False
        self._released = threading.Condition()

    @property
    def state(self) -> ActiveState:
        return self._state

    @property
    def revision(self) -> str:
        return self._state.engine.revision

    @property
    def held(self) -> str | None:
        """Why decisions wait (None: they do not)."""
        return self._held

    def decide(self, flow: Flow) -> Decision:
        if self._held is not None:
            self._wait()
        return self._state.engine.decide(flow)

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        if self._held is not None:
            self._wait()
        return self._state.engine.decide_many(flows)

    def document(self, path: str, value: Any) -> Any:
        """Another document of the active policy (e.g. ``residency/raw_processing``)."""
        return self._state.engine.document(path, value)  # type: ignore[attr-defined]

    def hold(self, reason: str) -> None:
        with self._released:
            self._held = reason

    def release(self) -> None:
        with self._released:
            self._held = None
            self._released.notify_all()

    def close(self) -> None:
        """Release every waiting decision with PolicyUnavailableError (shutdown)."""
        with self._released:
            self._closed = True
            self._released.notify_all()

    def _wait(self) -> None:
        with self._released:
            while self._held is not None:
                if self._closed:
                    raise PolicyUnavailableError(f"routing paused: {self._held}")
                self._released.wait(1.0)

    def swap(self, state: ActiveState) -> ActiveState:
        """Make ``state`` the active one (one reference assignment) and return the previous one."""
        previous, self._state = self._state, state
        return previous

    def cache_stats(self) -> dict[str, int] | None:
        engine = self._state.engine
        return engine.stats() if isinstance(engine, CachedPolicyEngine) else None


__all__ = ["ActivePolicy", "ActiveState"]
