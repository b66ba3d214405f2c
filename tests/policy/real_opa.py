"""A second, real OPA engine for the tests: OPA's own Go ``rego`` package (v1.20), not rego-cpp.

Production asks OPA servers (docker-compose); the embedded engine is rego-cpp (regopy). Where the two
evaluate Rego differently (undefined values under ``not``, conflicts, 64-bit numbers, Unicode), production
must not be the first to find out: ``./scripts/test`` runs every Rego test, every decision case and a
generated parity corpus under both engines and fails on any difference.

OPA's engine comes from PyPI: the wheel of ``opa-golib-python-bindings`` embeds OPA's ``rego`` package as a C
library (``libopabridge.so``) with a ctypes wrapper. Its metadata asks for Python 3.14, but the library loads
through ctypes on 3.11, so ``scripts/bootstrap.sh`` (``BOOTSTRAP_FOR_TESTS=1``) downloads the wheel by pinned
version and hash (``scripts/real-opa.txt``) and unpacks it into ``.venv/real-opa/lib``. Nothing here is
skipped when it is missing: the import fails with the command that installs it.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policy.engine import (
    DECISION_DOCUMENT,
    compute_revision,
    load_data,
    read_modules,
    validate_decision,
)
from policy.errors import PolicyEvaluationError, PolicyLoadError
from policy.models import Decision, Flow
from policy.rego_tests import RegoTest, RegoTestResult, check_case, discover, fixture_packages, with_fixture

ROOT = Path(__file__).resolve().parents[2]
LIB_DIR = ROOT / ".venv" / "real-opa" / "lib"
INSTALL_HINT = "run BOOTSTRAP_FOR_TESTS=1 bash scripts/bootstrap.sh (it downloads the wheel of scripts/real-opa.txt)"


def bindings() -> Any:
    """The ``opa_bindings`` module of the unpacked wheel."""
    if not (LIB_DIR / "opa_bindings" / "libopabridge.so").is_file():
        raise RuntimeError(f"OPA's Go engine is not unpacked in {LIB_DIR}: {INSTALL_HINT}")
    if str(LIB_DIR) not in sys.path:
        sys.path.insert(0, str(LIB_DIR))
    import opa_bindings

    return opa_bindings


class RealOpaEngine:
    """The policy directory loaded into OPA's Go engine; the same interface as ``EmbeddedPolicyEngine``.

    ``evaluate`` answers ``data.residency.decision`` for any JSON value as input, exactly as
    ``POST /v1/data/residency/decision`` of an OPA server would (the server runs this same package).
    An evaluation error (e.g. ``eval_conflict_error``) is a :class:`PolicyEvaluationError`, as the OPA client
    maps OPA's HTTP 500. ``data`` replaces the policy directory's data document (fixture runs).
    """

    def __init__(self, policy_dir: Path, *, include_tests: bool = False, data: dict[str, Any] | None = None):
        opa = bindings()
        self._error = opa.OpaError
        self._undefined = opa.OpaUndefinedError
        self._revision = compute_revision(policy_dir)
        self._engine = opa.OpaEngine()
        try:
            for name, source in read_modules(policy_dir, include_tests=include_tests).items():
                self._engine.add_policy(name, source)
            self._engine.add_data(data if data is not None else load_data(policy_dir, self._revision))
        except opa.OpaError as exc:
            raise PolicyLoadError(f"{policy_dir}: OPA rejects the policy: {exc}") from exc
        self._lock = threading.Lock()

    @property
    def revision(self) -> str:
        return self._revision

    def evaluate(self, value: Any) -> Any:
        with self._lock:
            try:
                return self._engine.eval_document("residency.decision", value)
            except self._undefined as exc:
                raise PolicyEvaluationError(f"{DECISION_DOCUMENT} is undefined") from exc
            except self._error as exc:
                raise PolicyEvaluationError(f"{DECISION_DOCUMENT}: {exc}") from exc

    def decide(self, flow: Flow) -> Decision:
        return validate_decision(self.evaluate(flow.to_input()))

    def document(self, path: str, value: Any) -> Any:
        """Another document (e.g. ``residency/raw_processing``), as ``POST /v1/data/<path>`` would answer."""
        with self._lock:
            try:
                return self._engine.eval_document(path.strip("/").replace("/", "."), value)
            except self._undefined as exc:
                raise PolicyEvaluationError(f"data.{path} is undefined") from exc
            except self._error as exc:
                raise PolicyEvaluationError(f"data.{path}: {exc}") from exc

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(flow) for flow in flows]

    def query(self, query: str) -> list[dict[str, Any]]:
        with self._lock:
            results: list[dict[str, Any]] = self._engine.eval_query(query)  # the untyped Go bridge's result sets
            return results

    def close(self) -> None:
        self._engine.close()


def _run_group(policy_dir: Path, tests: list[RegoTest], data: dict[str, Any]) -> list[RegoTestResult]:
    """One query per package (its whole document: every test and case rule), as a query per rule would
    compile the policy once per rule; a rule that is undefined (a failed test) is absent from it."""
    engine = RealOpaEngine(policy_dir, include_tests=True, data=data)
    results = []
    try:
        documents: dict[str, Any] = {}
        for package in sorted({t.package for t in tests}):
            try:
                rows = engine.query(f"x = data.{package}")
                documents[package] = rows[0]["x"] if rows else {}
            except engine._error as exc:
                documents[package] = exc
        for test in tests:
            document = documents[test.package]
            if isinstance(document, Exception):
                results.append(RegoTestResult(test, False, f"OPA: {document}"))
                continue
            value = document.get(test.name) if isinstance(document, dict) else None
            if test.is_case:
                if value is None:
                    results.append(RegoTestResult(test, False, "the case is not a value"))
                    continue
                problem = check_case(value, engine.evaluate)
                results.append(RegoTestResult(test, problem is None, problem or ""))
            elif value is True:
                results.append(RegoTestResult(test, True))
            elif value is None:
                results.append(RegoTestResult(test, False, "undefined (a condition did not hold)"))
            else:
                results.append(RegoTestResult(test, False, json.dumps(value)[:300]))
    finally:
        engine.close()
    return results


def run_rego_tests(policy_dir: Path) -> list[RegoTestResult]:
    """Every ``test_*`` rule and ``case_*`` decision case of the ``*_test.rego`` files evaluated by OPA, with
    the fixture data of the packages that declare one (the same rules as ``policy.rego_tests.run``)."""
    tests = discover(policy_dir)
    data = load_data(policy_dir, compute_revision(policy_dir))
    fixtures = fixture_packages(policy_dir)
    results = _run_group(policy_dir, [t for t in tests if t.package not in fixtures], data)
    for package in sorted(fixtures):
        probe = RealOpaEngine(policy_dir, include_tests=True, data=data)
        try:
            fixture = probe.query(f"x = data.{package}.fixture")[0]["x"]
        finally:
            probe.close()
        results += _run_group(
            policy_dir, [t for t in tests if t.package == package], with_fixture(data, fixture, package)
        )
    order = {t.id: i for i, t in enumerate(tests)}
    return sorted(results, key=lambda r: order[r.test.id])
