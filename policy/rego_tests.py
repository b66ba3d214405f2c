"""Runs the policy's tests: Rego unit tests (``test_*`` rules) and decision cases (``case_*`` rules) of the
``*_test.rego`` files, through regopy.

Two kinds, so that a fact lives in one place and a failure says what it is about:

- A **decision case** is a rule ``case_<name> := {"flow": {...}, "expect": {...}}`` (package
  ``residency_test``): one flow and the decision expected for it, pinning one fact of the data (an adequacy
  entry, a threshold, a rule). The runner decides the flow with the policy and compares; a failure prints
  the expected and the obtained decision, so a compliance officer who changed that fact sees which cases
  were about it and what they now get. ``expect`` keys (each optional): ``allow``, ``localization``,
  ``requires``, ``transforms``, ``reasons`` (the exact list), ``reasons_contain`` (texts each found in some
  reason), ``cites`` (the start of the first reason), ``reasons_count``; ``about`` may say what fact it pins.
- A **Rego unit test** is a rule ``test_<name>`` that must be ``true``. Tests of the decision *logic* run on
  fixture data, never on ``data/``, so a change of a fact never breaks them: a test package that declares a
  rule ``fixture := {"<data file stem>": <content>, ...}`` is evaluated with ``data.residency_data.<stem>``
  replaced by that content (rego-cpp 1.5 runs out of memory on ``with data.residency_data... as`` over this
  policy, so the runner swaps the data instead).

Tests call the pure function ``residency.decide(flow)`` instead of ``with input as`` (rego-cpp 1.x crashes on
``with input as`` when the rule under test depends on other rules). The policy is compiled once for the
whole suite (each test, each case and the decision are entrypoints of one rego-cpp bundle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.engine import (
    DATA_ROOT,
    DECISION_PATH,
    DEFAULT_POLICY_DIR,
    _stdout_to_stderr,
    compute_revision,
    describe_rego_error,
    is_test_module,
    load_data,
    new_interpreter,
    parse_output,
    read_modules,
)
from policy.errors import PolicyError, PolicyLoadError

_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)\s*$", re.M)
_TEST_RE = re.compile(r"^((?:test|case)_\w+)\s*(?:if\b|:=|=|\{)", re.M)
_FIXTURE_RE = re.compile(r"^fixture\s*:=", re.M)
EXPECT_KEYS = {
    "allow",
    "localization",
    "requires",
    "transforms",
    "reasons",
    "reasons_contain",
    "cites",
    "reasons_count",
}


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

    @property
    def is_case(self) -> bool:
        return self.name.startswith("case_")


@dataclass(frozen=True)
class RegoTestResult:
    test: RegoTest
    passed: bool
    detail: str = ""


def discover(policy_dir: Path = DEFAULT_POLICY_DIR) -> list[RegoTest]:
    """Every ``test_*`` and ``case_*`` rule head of every ``*_test.rego`` file, in file order."""
    tests: list[RegoTest] = []
    for path in sorted((Path(policy_dir) / "rego").rglob("*_test.rego")):
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(policy_dir).as_posix()
        package = _PACKAGE_RE.search(source)
        if not package:
            raise PolicyLoadError(f"{rel}: no package line")
        tests += [RegoTest(rel, package.group(1), name) for name in _TEST_RE.findall(source)]
    return tests


def _show(decision: dict[str, Any]) -> str:
    return (
        f"allow={json.dumps(decision.get('allow'))} localization={json.dumps(decision.get('localization'))} "
        f"requires={json.dumps(decision.get('requires'))}"
    )


def check_case(case: Any, decide: Callable[[Any], dict[str, Any]]) -> str | None:
    """None when ``decide(case.flow)`` gives the decision ``case.expect`` describes; else what differs, with
    the expected and the obtained decision (its reasons included)."""
    if not isinstance(case, dict) or not isinstance(case.get("flow"), dict) or not isinstance(case.get("expect"), dict):
        return 'a case must be an object {"flow": {...}, "expect": {...}}'
    expect: dict[str, Any] = case["expect"]
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        return f"unknown expect key(s) {unknown} (known: {sorted(EXPECT_KEYS)})"
    try:
        got = decide(case["flow"])
    except PolicyError as exc:
        return f"flow {json.dumps(case['flow'])}: the policy could not decide: {exc}"
    reasons = got.get("reasons") or []
    wrong: list[str] = [
        key
        for key in ("allow", "localization", "requires", "transforms", "reasons")
        if key in expect and got.get(key) != expect[key]
    ]
    wrong += [
        f"reasons_contain {text!r}" for text in expect.get("reasons_contain", []) if not any(text in r for r in reasons)
    ]
    if "cites" in expect and not (reasons and reasons[0].startswith(expect["cites"])):
        wrong.append(f"cites {expect['cites']!r}")
    if "reasons_count" in expect and len(reasons) != expect["reasons_count"]:
        wrong.append(f"reasons_count {expect['reasons_count']}")
    if not wrong:
        return None
    lines = [
        f"flow {json.dumps(case['flow'])}",
        "  expected: " + " ".join(f"{k}={json.dumps(v)}" for k, v in expect.items()),
        f"  obtained: {_show(got)} transforms={json.dumps(got.get('transforms'))}",
        *(f"    reason: {r}" for r in reasons),
        f"  differs in: {', '.join(wrong)}",
    ]
    return "\n".join(lines)


def fixture_packages(policy_dir: Path = DEFAULT_POLICY_DIR) -> set[str]:
    """Test packages that declare a ``fixture`` rule: their tests run on fixture data (see the module doc)."""
    found = set()
    for path in sorted((Path(policy_dir) / "rego").rglob("*_test.rego")):
        source = path.read_text(encoding="utf-8")
        package = _PACKAGE_RE.search(source)
        if package and _FIXTURE_RE.search(source):
            found.add(package.group(1))
    return found


def with_fixture(data: dict[str, Any], fixture: Any, what: str) -> dict[str, Any]:
    """``data`` with ``residency_data.<name>`` replaced by ``fixture[<name>]`` for every name of the fixture."""
    if not isinstance(fixture, dict) or not all(isinstance(k, str) for k in fixture):
        raise PolicyLoadError(f"{what}: fixture must be an object of data file names to their content")
    return {**data, DATA_ROOT: {**data[DATA_ROOT], **fixture}}


def _entrypoint(test: RegoTest) -> str:
    return test.ref[len("data.") :].replace(".", "/")


def run(policy_dir: Path = DEFAULT_POLICY_DIR) -> list[RegoTestResult]:
    """Run every discovered Rego test (passes when exactly ``true``) and decision case (see the module doc)."""
    policy_dir = Path(policy_dir)
    tests = discover(policy_dir)
    if not tests:
        return []
    modules = read_modules(policy_dir, include_tests=True)
    data = load_data(policy_dir, compute_revision(policy_dir))
    fixtures = fixture_packages(policy_dir)
    plain = [t for t in tests if t.package not in fixtures]
    by_id = {t.id: RegoTestResult(t, False, "not run") for t in tests}
    for result in _run_bundle(plain, modules, data):
        by_id[result.test.id] = result
    for package in sorted(fixtures):
        mine = [t for t in tests if t.package == package]
        fixture_ref = RegoTest(mine[0].file if mine else "", package, "fixture")
        try:
            fixture = _evaluate_constant(modules, data, fixture_ref)
            results = _run_bundle(mine, modules, with_fixture(data, fixture, fixture_ref.ref))
        except PolicyLoadError as exc:
            results = [RegoTestResult(t, False, str(exc)) for t in mine]
        for result in results:
            by_id[result.test.id] = result
    return [by_id[t.id] for t in tests]


def _evaluate_constant(modules: dict[str, str], data: dict[str, Any], ref: RegoTest) -> Any:
    import regopy
    from regopy.rego_shared import rego_bundle_query_entrypoint, rego_output_ok, rego_output_string

    builder = new_interpreter(modules, data)
    try:
        with _stdout_to_stderr():
            bundle = builder.build(None, [_entrypoint(ref)])
        runner = regopy.Interpreter()  # kept in a variable: its native handle must outlive the query
        output = rego_bundle_query_entrypoint(runner._impl, bundle._impl, _entrypoint(ref))
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"{ref.ref}: {describe_rego_error(exc, modules)}") from exc
    text = rego_output_string(output).strip()
    if not rego_output_ok(output) or text == "undefined":
        raise PolicyLoadError(f"{ref.ref} is not a value: {text[:200]}")
    return parse_output(text, ref.ref)


def _run_bundle(tests: list[RegoTest], modules: dict[str, str], data: dict[str, Any]) -> list[RegoTestResult]:
    import regopy
    from regopy.rego_shared import rego_bundle_query_entrypoint, rego_output_ok, rego_output_string

    if not tests:
        return []
    builder = new_interpreter(modules, data)
    seen: dict[str, RegoTest] = {}
    duplicates: set[str] = set()
    for test in tests:
        if test.ref in seen:
            duplicates.add(test.ref)
        seen[test.ref] = test
    entrypoints = [DECISION_PATH, *(_entrypoint(t) for t in seen.values())]
    try:
        with _stdout_to_stderr():
            bundle = builder.build(None, entrypoints)
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"Rego tests do not compile: {describe_rego_error(exc, modules)}") from exc
    runner = regopy.Interpreter()

    def query(entrypoint: str) -> tuple[bool, str]:
        output = rego_bundle_query_entrypoint(runner._impl, bundle._impl, entrypoint)
        return rego_output_ok(output), rego_output_string(output).strip()

    def decide(flow: Any) -> dict[str, Any]:
        runner.set_input_term(json.dumps(flow))
        ok, text = query(DECISION_PATH)
        if not ok:
            raise PolicyError(f"evaluation error: {text[:300]}")
        decision: dict[str, Any] = parse_output(text, "data.residency.decision")  # the decision document: an object
        return decision

    results = []
    for test in tests:
        if test.ref in duplicates:
            results.append(RegoTestResult(test, False, "test name defined more than once in the package"))
            continue
        try:
            ok, text = query(_entrypoint(test))
        except regopy.RegoError as exc:
            results.append(RegoTestResult(test, False, describe_rego_error(exc, modules)))
            continue
        if test.is_case:
            if not ok or text == "undefined":
                results.append(RegoTestResult(test, False, f"the case is not a value: {text[:300]}"))
                continue
            problem = check_case(parse_output(text, test.ref), decide)
            results.append(RegoTestResult(test, problem is None, problem or ""))
        elif ok and text == '{"expressions":[true]}':
            results.append(RegoTestResult(test, True))
        elif ok and text == "undefined":
            results.append(RegoTestResult(test, False, "undefined (a condition did not hold)"))
        else:
            results.append(RegoTestResult(test, False, text[:300]))
    return results


def summary(results: list[RegoTestResult]) -> str:
    """``N passed, M failed``."""
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"


def kinds(results: list[RegoTestResult]) -> str:
    """``C decision cases, T Rego tests``."""
    cases = sum(r.test.is_case for r in results)
    return f"{cases} decision cases, {len(results) - cases} Rego tests"


__all__ = [
    "RegoTest",
    "RegoTestResult",
    "check_case",
    "discover",
    "fixture_packages",
    "is_test_module",
    "kinds",
    "run",
    "summary",
    "with_fixture",
]
