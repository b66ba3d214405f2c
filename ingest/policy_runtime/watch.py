"""Watching for a new revision, and the complete :class:`PolicyRuntime` of a replica.

- **file**: a watcher thread hashes the policy directory every ``INGEST_POLICY_WATCH_S`` seconds (0: off).
  When the revision on disk changes, it copies the directory (so an edit half-way through cannot mix two
  versions), loads the copy and runs its Rego tests; only a candidate that loads and passes is activated.
  A refused candidate is logged and recorded; the running revision stays.
- **api**: each poll also follows the accepted API activations of other replicas
  (:mod:`ingest.policy_runtime.drafts`).
- **opa** (``INGEST_POLICY_ENGINE=opa``): OPA's bundles are the source of policy. The watcher asks OPA for
  its bundle revision and, when it changes, checks it against the platform's invariants, empties the
  decision cache and records the change, or pauses routing until OPA serves a revision that keeps them.

At start the replica records its startup revision, follows an API activation made while it was down, and
warms the decision cache in the background with the inputs of the most recent recorded decisions.
"""

from __future__ import annotations

import contextlib
import shutil
import threading

from ingest.config import IngestSettings
from ingest.errors import StoreUnavailableError
from ingest.policy_runtime.candidate import CheckResult, check_candidate
from ingest.policy_runtime.core import WARM_LIMIT, log
from ingest.policy_runtime.drafts import DraftActivation
from ingest.store import recorded_decisions
from ingest.store.policy_activations import Activation
from policy import CachedPolicyEngine, Flow
from policy import invariants as platform_invariants
from policy.bundle import snapshot
from policy.engine import compute_revision
from policy.errors import PolicyError, PolicyUnavailableError

WARM_SCAN = 20_000  # recent decisions scanned at startup for the flows to decide ahead


class PolicyRuntime(DraftActivation):
    """Owns the :class:`ActivePolicy` of one ingest replica and every way of changing it: the core
    (:class:`RuntimeCore`), drafts and API activation (:class:`DraftActivation`), and here its lifecycle and
    the watcher."""

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> PolicyRuntime:
        """The runtime of ``INGEST_POLICY_*`` settings; the replica is named by ``INGEST_MQTT_CLIENT_ID``."""
        return cls(
            kind=settings.policy_engine,
            policy_dir=settings.policy_dir,
            control_dsn=settings.control_dsn,
            replica=settings.mqtt_client_id,
            opa_url=settings.opa_url,
            cache_size=settings.decision_cache_size,
            watch_s=settings.policy_watch_s,
            invariants=platform_invariants.load(settings.policy_invariants_file),
        )

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Record the startup revision, follow an API activation made while this replica was down, and
        start the watcher thread (unless ``watch_s`` is 0)."""
        if self._startup_refused is not None:
            refused = self._startup_refused
            self.last_refused = Activation(refused.revision, None, "opa-bundle", "startup", "refused", refused.error)
            self._record(self.last_refused)
        else:
            self._record(Activation(self.active.revision, None, "startup", "startup", "accepted", None))
        if self.kind == "embedded":
            try:
                self._follow_api(startup=True)
            except (StoreUnavailableError, PolicyError) as exc:
                log.warning("cannot check the control store for API activations: %s", exc)
        threading.Thread(target=self._warm_from_control, name="policy-warm", daemon=True).start()
        if self.watch_s > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="policy-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.active.close()  # a decision waiting on a paused policy gives up (shutdown)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._opa is not None:
            self._opa.close()

    def _warm_from_control(self) -> None:
        """Decide the distinct inputs of the most recent recorded decisions (e.g. before a restart) in the
        background, so that the cache is warm when the traffic comes back."""
        engine = self.active.state.engine
        if not isinstance(engine, CachedPolicyEngine):
            return
        try:
            inputs = recorded_decisions.recent_inputs(self.control_dsn, scan=WARM_SCAN, limit=WARM_LIMIT)
        except StoreUnavailableError as exc:
            log.warning("cannot read recent decisions to warm the decision cache: %s", exc)
            return
        flows = []
        for policy_input in inputs:
            with contextlib.suppress(PolicyError):
                flows.append(Flow.parse(policy_input))
        if flows:
            log.info("decision cache warmed with %d recorded flow(s)", engine.warm(flows, reset_counters=False))

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_s):
            try:
                self.poll()
            except Exception:  # the watcher must survive anything; the next poll retries
                log.exception("policy watcher poll failed")

    def poll(self) -> None:
        """One watcher iteration: OPA revision, or files then API activations of other replicas."""
        self._flush()
        if self.kind == "opa":
            self.check_opa()
            return
        self.check_files()
        try:
            self._follow_api()
        except (StoreUnavailableError, PolicyError) as exc:
            log.warning("cannot follow API activations: %s", exc)

    # --- sources -------------------------------------------------------------------------------------

    def check_files(self) -> Activation | None:
        """Activate the policy directory if its revision changed since the last check."""
        try:
            on_disk = compute_revision(self.policy_dir)
        except (PolicyError, OSError) as exc:
            log.warning("policy directory %s unreadable: %s", self.policy_dir, exc)
            return None
        if on_disk == self._file_revision:
            return None
        with self._lock:
            self._file_revision = on_disk
            if on_disk == self.active.revision:
                return None
            actor = f"file:{self.policy_dir}"
            try:
                copy = snapshot(self.policy_dir)
            except (PolicyError, OSError) as exc:
                return self._refuse(on_disk, "file", actor, CheckResult(on_disk, None, 0, 0, f"unreadable: {exc}"))
            try:
                check = check_candidate(copy, self.invariants)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            if not check.ok or check.engine is None:
                return self._refuse(check.revision, "file", actor, check)
            check.engine.source = str(self.policy_dir)
            return self._activate(check.engine, check.revision, "file", actor, check)

    def check_opa(self) -> Activation | None:
        """When OPA's bundle revision changed: check it against the platform's invariants; empty the cache,
        record the change and release a pause if it keeps them, else pause routing (and record the refusal).

        OPA cannot be asked to evaluate an older revision, so a bundle that breaks an invariant cannot be
        refused by routing with the previous one: decisions wait (:meth:`ActivePolicy.hold`) until OPA serves
        a revision that keeps every invariant. Each revision is checked once."""
        if self._opa is None:
            return None
        revision = self._opa.refresh_revision()
        with self._lock:
            # the engine's own revision is already the new one: compare with the one this state was made for
            if revision == self._opa_refused or (revision == self.active.state.revision and self.active.held is None):
                return None
            try:
                refused = self._check_opa_invariants(revision)
            except PolicyUnavailableError as exc:
                log.warning("OPA revision %s not checked against the invariants yet: %s", revision, exc)
                return None
            if refused is not None:
                self._opa_refused = revision
                self.active.hold(self._hold_reason(revision, refused.error))
                return self._refuse(revision, "opa", "opa-bundle", refused)
            self._opa_refused = None
            result = self._activate(self._opa, revision, "opa", "opa-bundle", None)
            self.active.release()
            return result


__all__ = ["WARM_SCAN", "PolicyRuntime"]
