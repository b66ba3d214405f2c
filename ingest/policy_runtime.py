"""The active policy of a running ingest, and how a new revision becomes active without a restart.

:class:`ActivePolicy` is what the router asks: a :class:`policy.PolicyEngine` that delegates to the current
cached engine. Activation swaps one immutable :class:`ActiveState` reference (atomic for readers: the next
decision uses the new engine; a decision in flight finishes on the old one) and every new state has a new,
empty decision cache.

:class:`PolicyRuntime` decides when to swap:

- **file**: a watcher thread hashes the policy directory every ``INGEST_POLICY_WATCH_S`` seconds (0: off).
  When the revision on disk changes, it copies the directory (so an edit half-way through cannot mix two
  versions), loads the copy and runs its Rego tests; only a candidate that loads and passes is activated.
  A refused candidate is logged and recorded; the running revision stays.
- **api**: ``POST /api/v1/policy/drafts`` stores a draft (its files, in the control store, so that every
  replica can load it); ``POST /api/v1/policy/activate`` checks it the same way and activates it. Other
  replicas see the accepted activation in ``policy_activations`` on their next poll and follow it.
- **opa** (``INGEST_POLICY_ENGINE=opa``): OPA's bundles are the source of policy. The watcher asks OPA for
  its bundle revision and, when it changes, empties the decision cache and records the change. Drafts and
  activation through the API answer 409 in this mode.

Every attempt is a row of the control table ``policy_activations`` (migration 0002): revision, previous
revision, who, when, source, accepted or refused, and the error. Rows that cannot be written while the
control store is down are kept and written on a later poll.

Who: the authenticated user on the API (``Principal.user``, see ``ingest.api.auth``), ``file:<dir>`` for
file changes, ``opa-bundle`` for OPA. Draft uploads and API activations (accepted or refused) are also
written to the audit trail (``ingest.store.audit``) in the same transaction as their own row; replicas that
follow an activation record it in ``policy_activations`` only.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.config import IngestSettings
from ingest.errors import StoreUnavailableError
from ingest.store import audit
from policy import CachedPolicyEngine, Decision, EmbeddedPolicyEngine, Flow, OpaPolicyEngine, PolicyEngine, rego_tests
from policy import invariants as platform_invariants
from policy.bundle import count_tests, files_digest, read_policy_dir, snapshot, write_policy_dir
from policy.engine import compute_revision
from policy.errors import PolicyDraftError, PolicyError, PolicyUnavailableError
from policy.invariants import InvariantsBroken, InvariantSet

log = logging.getLogger("ingest.policy")

Source = Literal["startup", "file", "api", "opa"]
WARM_LIMIT = 2000  # flows decided ahead when a revision is activated (at most)
WARM_SCAN = 20_000  # recent decisions scanned at startup for the flows to decide ahead


class ActivationRefused(PolicyError):
    """A candidate policy did not load or did not pass its Rego tests; the running revision stays."""

    def __init__(self, revision: str, error: str) -> None:
        super().__init__(f"policy {revision} refused: {error}")
        self.revision = revision
        self.error = error


class DraftNotFoundError(PolicyError):
    """No draft with that revision was uploaded."""


class ManagedByOpaError(PolicyError):
    """With INGEST_POLICY_ENGINE=opa, policies are activated by OPA bundles, not by this service."""


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


@dataclass(frozen=True)
class CheckResult:
    """A candidate that loaded (``engine``) and whose Rego tests ran."""

    revision: str
    engine: EmbeddedPolicyEngine | None
    tests_passed: int
    tests_failed: int
    error: str | None
    invariants_failed: tuple[str, ...] = ()
    """Ids of the platform invariants the candidate breaks."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Activation:
    revision: str
    previous_revision: str | None
    activated_by: str
    source: Source
    outcome: Literal["accepted", "refused"]
    error: str | None
    tests_passed: int | None = None
    tests_failed: int | None = None
    draft_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audited: bool = False  # write an audit row with the activation row (an API request, not a follower)


def check_candidate(policy_dir: Path, invariants: InvariantSet | None = None) -> CheckResult:
    """Load a policy directory, check the platform's invariants and run its Rego tests (the gate of every
    activation). ``invariants``: the platform's set (default: ``policy/invariants.yaml``)."""
    if invariants is None:
        invariants = platform_invariants.load()
    try:
        revision = compute_revision(policy_dir)
    except PolicyError as exc:
        return CheckResult("unreadable", None, 0, 0, str(exc))
    try:
        engine = EmbeddedPolicyEngine.from_dir(policy_dir)
    except PolicyError as exc:
        return CheckResult(revision, None, 0, 0, f"does not load: {exc}")
    violations = platform_invariants.check(engine, invariants, content_revision=True)
    broken = tuple(sorted({v.invariant.id for v in violations}))
    problems = [platform_invariants.summary(violations)] if violations else []
    try:
        results = rego_tests.run(policy_dir)
    except PolicyError as exc:
        return CheckResult(revision, engine, 0, 0, "; ".join([*problems, f"Rego tests do not run: {exc}"]), broken)
    passed = sum(r.passed for r in results)
    failed = [r for r in results if not r.passed]
    if not results:
        problems.append("no Rego tests (rego/**/*_test.rego): a policy is only activated when its tests pass "
                        "(build drafts with `python -m policy bundle --with-tests`)")
    if failed:
        shown = "; ".join(f"{r.test.id}: {r.detail}" for r in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        problems.append(f"{len(failed)} Rego test(s) fail: {shown}{more}")
    return CheckResult(revision, engine, passed, len(failed), "; ".join(problems) or None, broken)


class PolicyRuntime:
    """Owns the :class:`ActivePolicy` of one ingest replica and every way of changing it."""

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
                startup_refused = CheckResult(revision, None, 0, 0, f"could not be checked against the platform "
                                              f"invariants: {exc}")
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
        self, inner: PolicyEngine, revision: str, source: Source, actor: str, check: CheckResult | None,
        draft_id: str | None = None, audit: bool = False,
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
            revision, previous.revision, actor, source, "accepted", None,
            check.tests_passed if check else None, check.tests_failed if check else None, draft_id,
            audited=audit,
        )
        for listener in self._listeners:
            listener(revision)
        log.info("policy %s activated (%s, by %s; was %s)", revision, source, actor, previous.revision)
        self._record(result)
        return result

    def _refuse(
        self, revision: str, source: Source, actor: str, check: CheckResult, draft_id: str | None = None,
        audit: bool = False,
    ) -> Activation:
        result = Activation(
            revision, self.active.revision, actor, source, "refused", check.error,
            check.tests_passed, check.tests_failed, draft_id, audited=audit,
        )
        self.last_refused = result
        log.warning("policy %s refused (%s, by %s): %s; %s stays active", revision, source, actor, check.error,
                    self.active.revision)
        self._record(result)
        return result

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
            with self._connect() as conn:
                rows = conn.execute(
                    "SELECT DISTINCT input FROM (SELECT input FROM decisions ORDER BY decided_at DESC LIMIT %s) d"
                    " LIMIT %s",
                    (WARM_SCAN, WARM_LIMIT),
                ).fetchall()
        except (psycopg.Error, StoreUnavailableError) as exc:
            log.warning("cannot read recent decisions to warm the decision cache: %s", exc)
            return
        flows = []
        for row in rows:
            with contextlib.suppress(PolicyError):
                flows.append(Flow.parse(row["input"]))
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

    def _check_opa_invariants(self, revision: str) -> CheckResult | None:
        """None when OPA's decisions keep every invariant, else the refusal. PolicyUnavailableError when OPA
        cannot be asked (nothing is decided then: the caller checks again later)."""
        assert self._opa is not None
        violations = platform_invariants.check(self._opa, self.invariants)
        if not violations:
            return None
        broken = tuple(sorted({v.invariant.id for v in violations}))
        return CheckResult(revision, None, 0, 0, platform_invariants.summary(violations), broken)

    @staticmethod
    def _hold_reason(revision: str, error: str | None) -> str:
        return (f"OPA serves revision {revision}, which {error}; routing waits until OPA serves a revision that "
                "keeps every platform invariant")

    def _follow_api(self, *, startup: bool = False) -> None:
        """Follow the newest accepted API activation (made on any replica) not yet seen here.

        At startup, only when it is also newer than every accepted file activation: then the files
        have not been edited since, and the API-activated revision is the intended one.
        """
        sources = "('api', 'file')" if startup else "('api')"
        row = self._query_one(
            f"SELECT id, revision, draft_id, activated_by, source FROM policy_activations"
            f" WHERE outcome = 'accepted' AND source IN {sources} ORDER BY id DESC LIMIT 1"
        )
        if row is None or row["id"] <= self._last_api_id:
            return
        latest_api = self._query_one(
            "SELECT max(id) AS id FROM policy_activations WHERE outcome = 'accepted' AND source = 'api'"
        )
        self._last_api_id = max(self._last_api_id, (latest_api or {}).get("id") or 0)
        if row["source"] != "api" or row["revision"] == self.active.revision:
            return
        with contextlib.suppress(ActivationRefused, DraftNotFoundError):  # recorded; this replica keeps its own
            if row["draft_id"] is None:  # the policy directory was activated again through the API
                if compute_revision(self.policy_dir) != row["revision"]:
                    log.warning("not following %s's activation of policy directory revision %s: this replica's "
                                "directory %s has another revision", row["activated_by"], row["revision"],
                                self.policy_dir)
                    return
                self.activate_file(row["activated_by"])
            else:
                self.activate(row["revision"], row["activated_by"], draft_id=row["draft_id"])

    # --- drafts and API activation ---------------------------------------------------------------------

    def upload_draft(self, files: Mapping[str, bytes], uploaded_by: str) -> dict[str, Any]:
        """Store a draft (checked layout) with the result of its check: does it load, keep the platform's
        invariants and pass its tests (what an activation would say)."""
        if self.kind == "opa":
            raise ManagedByOpaError("policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)")
        try:
            texts = {name: content.decode("utf-8") for name, content in files.items()}
        except UnicodeDecodeError as exc:
            raise PolicyDraftError(f"policy files must be UTF-8 text: {exc}") from exc
        tmp = Path(tempfile.mkdtemp(prefix="policy-draft-"))
        try:
            write_policy_dir(files, tmp)
            check = check_candidate(tmp, self.invariants)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        size = sum(len(c) for c in files.values())
        draft_id = files_digest(files)
        tests = count_tests(files)
        try:
            with self._connect() as conn, conn.transaction():  # the draft and its audit row together
                conn.execute(
                    "INSERT INTO policy_drafts (draft_id, revision, uploaded_by, files, bytes, tests, loads,"
                    " tests_passed, tests_failed, check_error, invariants_failed, checked_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (draft_id) DO UPDATE"
                    " SET uploaded_by = EXCLUDED.uploaded_by, uploaded_at = now(), loads = EXCLUDED.loads,"
                    " tests_passed = EXCLUDED.tests_passed, tests_failed = EXCLUDED.tests_failed,"
                    " check_error = EXCLUDED.check_error, invariants_failed = EXCLUDED.invariants_failed,"
                    " checked_at = now()",
                    (draft_id, check.revision, uploaded_by, Jsonb(texts), size, tests, check.engine is not None,
                     check.tests_passed, check.tests_failed, check.error, list(check.invariants_failed)),
                )
                audit.record(
                    conn, actor=uploaded_by, action="policy.draft_upload", target=f"policy:{check.revision}",
                    details={"draft_id": draft_id, "files": len(files), "bytes": size,
                             "loads": check.engine is not None, "tests_failed": check.tests_failed,
                             "invariants_failed": list(check.invariants_failed)},
                )
        except psycopg.Error as exc:
            raise StoreUnavailableError("control", _first_line(exc)) from None
        if check.engine is not None:
            self._remember(check.revision, check.engine)
        return {
            "revision": check.revision,
            "draft_id": draft_id,
            "files": len(files),
            "bytes": size,
            "tests": tests,
            "loads": check.engine is not None,
            "tests_passed": check.tests_passed,
            "tests_failed": check.tests_failed,
            "invariants_failed": list(check.invariants_failed),
            "error": check.error,
        }

    def activate(
        self, revision: str | None, activated_by: str, *, draft_id: str | None = None, audit: bool = False
    ) -> Activation:
        """Check a draft and activate it; ActivationRefused (recorded) when it fails.

        ``draft_id``: exactly that draft (``revision``, when also given, must be its revision). Else the
        best draft of ``revision``: the newest whose upload check passed, before untested or failing ones
        (so an untested upload of the same revision never shadows a tested one); and when no draft has that
        revision but the policy directory has, the directory (:meth:`activate_file`).
        ``audit``: also write the attempt to the audit trail (an API request).
        """
        if self.kind == "opa":
            raise ManagedByOpaError("policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa): "
                                    "activate by publishing a new bundle")
        if draft_id is None and revision is None:
            raise DraftNotFoundError("name a draft_id or a revision to activate")
        try:
            draft_id, stored, files = self.draft_files(revision, draft_id=draft_id)
        except DraftNotFoundError:
            if draft_id is None and revision is not None and revision == self._directory_revision():
                return self.activate_file(activated_by, audit=audit)
            raise
        if revision is not None and stored != revision:
            raise DraftNotFoundError(f"draft {draft_id} has revision {stored}, not {revision}")
        revision = stored
        with self._lock:
            tmp = Path(tempfile.mkdtemp(prefix="policy-activate-"))
            try:
                write_policy_dir(files, tmp)
                check = check_candidate(tmp, self.invariants)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if check.ok and check.revision != revision:
                check = CheckResult(check.revision, None, check.tests_passed, check.tests_failed,
                                    f"the stored files hash to {check.revision}, not {revision}")
            if not check.ok or check.engine is None:
                self._refuse(revision, "api", activated_by, check, draft_id, audit=audit)
                raise ActivationRefused(revision, check.error or "does not load")
            check.engine.source = f"draft {draft_id}"
            return self._activate(check.engine, revision, "api", activated_by, check, draft_id, audit=audit)

    def activate_file(self, activated_by: str, *, audit: bool = False) -> Activation:
        """Activate the policy directory (``INGEST_POLICY_DIR``) again, e.g. after an API draft, without
        uploading it: the same checks as any candidate. Recorded as an ``api`` activation without a draft,
        which other replicas follow with their own directory when it has the same revision."""
        if self.kind == "opa":
            raise ManagedByOpaError("policies are managed by OPA bundles (INGEST_POLICY_ENGINE=opa)")
        with self._lock:
            try:
                copy = snapshot(self.policy_dir)
            except (PolicyError, OSError) as exc:
                check = CheckResult("unreadable", None, 0, 0, f"policy directory {self.policy_dir} unreadable: {exc}")
                self._refuse(check.revision, "api", activated_by, check, audit=audit)
                raise ActivationRefused(check.revision, check.error or "unreadable") from None
            try:
                check = check_candidate(copy, self.invariants)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            self._file_revision = check.revision
            if not check.ok or check.engine is None:
                self._refuse(check.revision, "api", activated_by, check, audit=audit)
                raise ActivationRefused(check.revision, check.error or "does not load")
            check.engine.source = str(self.policy_dir)
            return self._activate(check.engine, check.revision, "api", activated_by, check, None, audit=audit)

    def _directory_revision(self) -> str | None:
        try:
            return compute_revision(self.policy_dir)
        except (PolicyError, OSError):
            return None

    def draft_files(
        self, revision: str | None, *, draft_id: str | None = None
    ) -> tuple[str, str, dict[str, bytes]]:
        """(draft id, revision, files) of ``draft_id``, or of the best draft of ``revision`` (see :meth:`activate`)."""
        if draft_id:
            row = self._query_one("SELECT draft_id, revision, files FROM policy_drafts WHERE draft_id = %s",
                                  (draft_id,))
        else:
            row = self._query_one(
                "SELECT draft_id, revision, files FROM policy_drafts WHERE revision = %s"
                " ORDER BY (loads IS TRUE AND check_error IS NULL) DESC, (tests > 0) DESC, uploaded_at DESC, draft_id"
                " LIMIT 1",
                (revision,),
            )
        if row is None:
            what = f"draft {draft_id}" if draft_id else f"draft with revision {revision!r}"
            raise DraftNotFoundError(f"no {what} (upload it to POST /api/v1/policy/drafts)")
        return row["draft_id"], row["revision"], {name: text.encode("utf-8") for name, text in row["files"].items()}

    def draft_engine(self, revision: str) -> EmbeddedPolicyEngine:
        """The loaded engine of a draft (kept in memory for what-if), loading it from the control store if needed."""
        with self._lock:
            found = self._drafts.get(revision)
            if found is not None:
                self._drafts.move_to_end(revision)
                return found
        _, _, files = self.draft_files(revision)
        tmp = Path(tempfile.mkdtemp(prefix="policy-draft-"))
        try:
            engine = EmbeddedPolicyEngine.from_dir(write_policy_dir(files, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._remember(revision, engine)
        return engine

    def current_files(self) -> dict[str, bytes]:
        return read_policy_dir(self.policy_dir)

    def _remember(self, revision: str, engine: EmbeddedPolicyEngine) -> None:
        with self._lock:
            self._drafts[revision] = engine
            self._drafts.move_to_end(revision)
            while len(self._drafts) > 4:
                self._drafts.popitem(last=False)

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
            with psycopg.connect(self.control_dsn, connect_timeout=5) as conn, conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO policy_activations (at, revision, previous_revision, draft_id, activated_by,"
                    " source, outcome, error, replica, engine, tests_passed, tests_failed)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(a.at, a.revision, a.previous_revision, a.draft_id, a.activated_by, a.source, a.outcome,
                      a.error, self.replica, self.kind, a.tests_passed, a.tests_failed) for a in pending],
                )
                for a in pending:
                    if a.audited:  # same transaction as its policy_activations row
                        audit.record(
                            conn, actor=a.activated_by,
                            action="policy.activate" if a.outcome == "accepted" else "policy.activate_refused",
                            target=f"policy:{a.revision}",
                            details={"previous_revision": a.previous_revision, "draft_id": a.draft_id,
                                     "error": a.error, "replica": self.replica, "at": a.at.isoformat()},
                        )
        except psycopg.Error as exc:
            log.warning("cannot record %d policy activation(s) yet: %s", len(pending), _first_line(exc))
            with self._lock:
                self._pending[:0] = pending

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            return psycopg.connect(self.control_dsn, connect_timeout=5, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise StoreUnavailableError("control", _first_line(exc)) from None

    def _query_one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        try:
            with self._connect() as conn:
                return conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise StoreUnavailableError("control", _first_line(exc)) from None

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            with self._connect() as conn:
                conn.execute(sql, params)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise StoreUnavailableError("control", _first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "Activation",
    "ActivationRefused",
    "ActivePolicy",
    "ActiveState",
    "CheckResult",
    "DraftNotFoundError",
    "ManagedByOpaError",
    "PolicyRuntime",
    "check_candidate",
]
