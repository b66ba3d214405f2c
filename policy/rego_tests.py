"""Runs the Rego unit tests (``test_*`` rules in ``*_test.rego`` files) through regopy.

The same files pass ``opa test policy/rego policy/data``-style runs: tests call the pure function
``residency.decide(flow)`` instead of ``with input as`` (rego-cpp 1.x crashes on ``with input as`` when
the rule under test depends on other rules). Each test rule is one rego-cpp bundle entrypoint, so the
policy is compiled once for the whole suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from policy.engine import (
    DEFAULT_POLICY_DIR,
    _stdout_to_stderr,
    compute_revision,
    describe_rego_error,
    is_test_module,
    load_data,
    new_interpreter,
    read_modules,
)
from policy.errors import PolicyLoadError

_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)\s*$", re.M)
_TEST_RE = re.compile(r"^(test_\w+)\s*(?:if\b|:=|=|\{)", re.M)


@dataclass(frozen=True)
class RegoTest:
    file: str
    package: str
    name: str

    @property
    def ref(self) -> str:
        return f"data.{self.package}.{self.name}"

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass(frozen=True)
class RegoTestResult:
    test: RegoTest
    passed: bool
    detail: str = ""


def discover(policy_dir: Path = DEFAULT_POLICY_DIR) -> list[RegoTest]:
    """Every ``test_*`` rule head of every ``*_test.rego`` file, in file order."""
    tests: list[RegoTest] = []
    for path in sorted((Path(policy_dir) / "rego").rglob("*_test.rego")):
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(policy_dir).as_posix()
        package = _PACKAGE_RE.search(source)
        if not package:
            raise PolicyLoadError(f"{rel}: no package line")
        tests += [RegoTest(rel, package.group(1), name) for name in _TEST_RE.findall(source)]
    return tests


def run(policy_dir: Path = DEFAULT_POLICY_DIR) -> list[RegoTestResult]:
    """Run every discovered Rego test; a test passes when its rule is exactly ``true``."""
    import regopy
    from regopy.rego_shared import rego_bundle_query_entrypoint, rego_output_ok, rego_output_string

    policy_dir = Path(policy_dir)
    tests = discover(policy_dir)
    if not tests:
        return []
    modules = read_modules(policy_dir, include_tests=True)
    builder = new_interpreter(modules, load_data(policy_dir, compute_revision(policy_dir)))
    seen: dict[str, RegoTest] = {}
    duplicates: set[str] = set()
    for test in tests:
        if test.ref in seen:
            duplicates.add(test.ref)
        seen[test.ref] = test
    entrypoints = [t.ref[len("data.") :].replace(".", "/") for t in seen.values()]
    try:
        with _stdout_to_stderr():
            bundle = builder.build(None, entrypoints)
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"Rego tests do not compile: {describe_rego_error(exc, modules)}") from exc
    runner = regopy.Interpreter()
    results = []
    for test in tests:
        if test.ref in duplicates:
            results.append(RegoTestResult(test, False, "test name defined more than once in the package"))
            continue
        entrypoint = test.ref[len("data.") :].replace(".", "/")
        try:
            output = rego_bundle_query_entrypoint(runner._impl, bundle._impl, entrypoint)
            ok, text = rego_output_ok(output), rego_output_string(output).strip()
        except regopy.RegoError as exc:
            results.append(RegoTestResult(test, False, describe_rego_error(exc, modules)))
            continue
        if ok and text == '{"expressions":[true]}':
            results.append(RegoTestResult(test, True))
        elif ok and text == "undefined":
            results.append(RegoTestResult(test, False, "undefined (a condition did not hold)"))
        else:
            results.append(RegoTestResult(test, False, text[:300]))
    return results


def summary(results: list[RegoTestResult]) -> str:
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"


__all__ = ["RegoTest", "RegoTestResult", "discover", "is_test_module", "run", "summary"]
