"""Checking a candidate: the gate of every activation.

A candidate policy directory must load, keep the platform's invariants (``policy/invariants.yaml``) and
pass its own Rego tests (:func:`check_candidate`; :func:`check_draft` for a draft's files). In OPA mode
the candidate is the revision OPA serves, and only the invariants can be checked (:func:`check_opa_invariants`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from policy import EmbeddedPolicyEngine, OpaPolicyEngine, rego_tests
from policy import invariants as platform_invariants
from policy.bundle import write_policy_dir
from policy.engine import compute_revision
from policy.errors import PolicyError
from policy.invariants import InvariantSet


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
        problems.append(
            "no Rego tests (rego/**/*_test.rego): a policy is only activated when its tests pass "
            "(build drafts with `python -m policy bundle --with-tests`)"
        )
    if failed:
        shown = "; ".join(f"{r.test.id}: {r.detail}" for r in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        problems.append(f"{len(failed)} Rego test(s) fail: {shown}{more}")
    return CheckResult(revision, engine, passed, len(failed), "; ".join(problems) or None, broken)


def check_draft(files: Mapping[str, bytes], invariants: InvariantSet, *, prefix: str = "policy-draft-") -> CheckResult:
    """:func:`check_candidate` of a draft's files, written to a temporary directory named ``prefix...``
    (removed afterwards)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        write_policy_dir(files, tmp)
        return check_candidate(tmp, invariants)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_opa_invariants(opa: OpaPolicyEngine, invariants: InvariantSet, revision: str) -> CheckResult | None:
    """None when OPA's decisions keep every invariant, else the refusal of ``revision`` (the revision OPA
    serves). PolicyUnavailableError when OPA cannot be asked (nothing is decided then: the caller checks
    again later)."""
    violations = platform_invariants.check(opa, invariants)
    if not violations:
        return None
    broken = tuple(sorted({v.invariant.id for v in violations}))
    return CheckResult(revision, None, 0, 0, platform_invariants.summary(violations), broken)


__all__ = ["CheckResult", "check_candidate", "check_draft", "check_opa_invariants"]
