"""The core of a replica's policy runtime: its active policy, accepted and refused activations, and their
records.

:class:`RuntimeCore` loads the startup revision (the policy directory, or the revision OPA serves, checked
against the platform's invariants), builds each new :class:`ActiveState` (with a new decision cache, warmed
with the flows the old revision served recently), swaps it in and tells the listeners, and records every
attempt as a row of ``policy_activations`` (:mod:`ingest.store.policy_activations`); rows that cannot be
written while the control store is down are kept and written on a later poll. The ways of changing the
policy are built on it: :mod:`ingest.policy_runtime.drafts` (API drafts and activation) and
:mod:`ingest.policy_runtime.watch` (the watcher; :class:`PolicyRuntime`).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ingest.errors import StoreUnavailableError
from ingest.policy_runtime.active import ActivePolicy, ActiveState
from ingest.policy_runtime.candidate import CheckResult, check_opa_invariants
from ingest.store.policy_activations import Activation, Source, record_activations
from policy import CachedPolicyEngine, EmbeddedPolicyEngine, OpaPolicyEngine, PolicyEngine
from policy import invariants as platform_invariants
from policy.bundle import snapshot
from policy.errors import PolicyError, PolicyUnavailableError
from policy.invariants import InvariantsBroken, InvariantSet

log = logging.getLogger("ingest.policy")

WARM_LIMIT = 2000  # flows decided ahead when a revision is activated (at most)


class RuntimeCore:
    """The :class:`ActivePolicy` of one ingest replica, how a new state is made active or refused, and the
    record of each attempt. Holds the state of every layer built on it (drafts, watcher)."""

    def __init__(
        self,
        *,
        kind: Literal["embedded", "opa"],
        policy_dir: Path,
        control_dsn: str,
        replica: str,
        opa_url: str | None = None,
        cache_size: int = 10_000,
        watch_s: float = 5.0,
        invariants: InvariantSet | None = None,
    ) -> None:
        self.kind = kind
        self.invariants = invariants if invariants is not None else platform_invariants.load()
        self.policy_dir = Path(policy_dir)
        self.control_dsn = control_dsn
        self.replica = replica
        self.cache_size = cache_size
        self.watch_s = watch_s
        self._lock = threading.RLock()  # one activation at a time
        self._pending: list[Activation] = []
        self._listeners: list[Callable[[str], None]] = []
        self._drafts: OrderedDict[str, EmbeddedPolicyEngine] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_refused: Activation | None = None
        self._opa_refused: str | None = None  # the OPA revision whose invariant check failed (checked once)
        startup_refused: CheckResult | None = None
        unchecked = False
        if kind == "opa":
            if not opa_url:
                raise PolicyError("INGEST_OPA_URL is required when INGEST_POLICY_ENGINE=opa")
            opa = OpaPolicyEngine(opa_url, revision_ttl=float("inf") if watch_s > 0 else 5.0)
            inner: PolicyEngine = opa
            revision = opa.refresh_revision()
            self._opa: OpaPolicyEngine | None = opa
            self._file_revision: str | None = None
            try:
                startup_refused = self._check_opa_invariants(revision)
                unchecked = False
            except PolicyUnavailableError as exc:  # paused until a poll can check it
                startup_refused = CheckResult(
                    revision, None, 0, 0, f"could not be checked against the platform invariants: {exc}"
                )
                unchecked = True
        else:
            copy = snapshot(self.policy_dir)
            try:
                inner = EmbeddedPolicyEngine.from_dir(copy)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            inner.source = str(self.policy_dir)
            revision = inner.revision
            self._opa = None
            self._file_revision = revision
            violations = platform_invariants.check(inner, self.invariants, content_revision=True)
            if violations:  # never route with it: the replica does not start (ingest serve exits naming them)
                raise InvariantsBroken(revision, violations)
        self.active = ActivePolicy(self._state(inner, revision, "startup", "startup"))
        self._startup_refused = startup_refused
        if startup_refused is not None:
            self._opa_refused = None if unchecked else revision
            self.active.hold(self._hold_reason(revision, startup_refused.error))
        self._last_api_id = 0

    # --- state ------------------------------------------------------------------------------------

    def _state(self, inner: PolicyEngine, revision: str, source: Source, actor: str) -> ActiveState:
        engine = CachedPolicyEngine(inner, maxsize=self.cache_size) if self.cache_size else inner
        return ActiveState(engine, inner, revision, self.kind, source, actor, datetime.now(UTC))

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(revision)`` after every accepted activation."""
        self._listeners.append(listener)

    def status(self) -> dict[str, Any]:
        state = self.active.state
        return {
            "revision": self.active.revision,
            "engine": self.kind,
            "loaded_at": state.loaded_at,
            "source": state.source,
            "activated_by": state.activated_by,
            "policy_dir": str(self.policy_dir) if self.kind == "embedded" else None,
            "file_revision": self._file_revision,
            "watch_s": self.watch_s,
            "replica": self.replica,
            "cache": self.active.cache_stats(),
            "last_refused": self.last_refused,
            "unrecorded_activations": len(self._pending),
            "paused": self.active.held,
            "invariants": len(self.invariants.invariants),
        }

    def _activate(
        self,
        inner: PolicyEngine,
        revision: str,
        source: Source,
        actor: str,
        check: CheckResult | None,
        draft_id: str | None = None,
        audit: bool = False,
    ) -> Activation:
        state = self._state(inner, revision, source, actor)
        if isinstance(state.engine, CachedPolicyEngine) and isinstance(self.active.state.engine, CachedPolicyEngine):
            # The flows the old revision served recently are decided now, here (watcher or API thread), so
            # that the first messages after the swap do not pay for uncached evaluations.
            warmed = state.engine.warm(self.active.state.engine.flows(limit=WARM_LIMIT))
            log.info("policy %s: decision cache warmed with %d flow(s)", revision, warmed)
        previous = self.active.swap(state)
        self.last_refused = None  # the banner of an earlier refusal ends with a later success
        result = Activation(
            revision,
            previous.revision,
            actor,
            source,
            "accepted",
            None,
            check.tests_passed if check else None,
            check.tests_failed if check else None,
            draft_id,
            audited=audit,
        )
        for listener in self._listeners:
            listener(revision)
        log.info("policy %s activated (%s, by %s; was %s)", revision, source, actor, previous.revision)
        self._record(result)
        return result

    def _refuse(
        self,
        revision: str,
        source: Source,
        actor: str,
        check: CheckResult,
        draft_id: str | None = None,
        audit: bool = False,
    ) -> Activation:
        result = Activation(
            revision,
            self.active.revision,
            actor,
            source,
            "refused",
            check.error,
            check.tests_passed,
            check.tests_failed,
            draft_id,
            audited=audit,
        )
        self.last_refused = result
        log.warning(
            "policy %s refused (%s, by %s): %s; %s stays active",
            revision,
            source,
            actor,
            check.error,
            self.active.revision,
        )
        self._record(result)
        return result

    def _check_opa_invariants(self, revision: str) -> CheckResult | None:
        """None when OPA's decisions keep every invariant, else the refusal. PolicyUnavailableError when OPA
        cannot be asked (nothing is decided then: the caller checks again later)."""
        assert self._opa is not None
        return check_opa_invariants(self._opa, self.invariants, revision)

    @staticmethod
    def _hold_reason(revision: str, error: str | None) -> str:
        return (
            f"OPA serves revision {revision}, which {error}; routing waits until OPA serves a revision that "
            "keeps every platform invariant"
        )

    # --- control store -------------------------------------------------------------------------------

    def _record(self, activation: Activation) -> None:
        with self._lock:
            self._pending.append(activation)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            record_activations(self.control_dsn, pending, replica=self.replica, engine=self.kind)
        except StoreUnavailableError as exc:
            log.warning("cannot record %d policy activation(s) yet: %s", len(pending), exc.reason)
            with self._lock:
                self._pending[:0] = pending


__all__ = ["WARM_LIMIT", "RuntimeCore"]
