"""The embedded policy engine: the Rego policy and its data evaluated in-process by regopy (rego-cpp).

Loading reads every non-test ``.rego`` file under ``<policy_dir>/rego`` and every ``.json`` file under
``<policy_dir>/data``. Data file ``data/<name>.json`` becomes ``data.residency_data.<name>``; the engine adds
``data.residency_meta.revision`` (the policy cannot hash itself), which the decision echoes as
``policy_revision``.

Evaluation compiles the policy once into a rego-cpp bundle (``Interpreter.build``) and runs
``query_bundle`` per decision: about ten times faster than ``Interpreter.query``, which recompiles every
module on every call (numbers in policy/README.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from policy.errors import PolicyEvaluationError, PolicyLoadError
from policy.models import Decision, Flow

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent
DECISION_DOCUMENT = "data.residency.decision"
DECISION_PATH = "residency/decision"
DATA_ROOT = "residency_data"
META_ROOT = "residency_meta"

_SMOKE_FLOW = {"origin": "DE", "destination": "FR", "category": "machine"}


@runtime_checkable
class PolicyEngine(Protocol):
    """What the ingest needs from any policy engine."""

    @property
    def revision(self) -> str:
        """``sha256:<hex>`` of the policy and data that decide."""
        ...

    def decide(self, flow: Flow) -> Decision:
        """The decision for one flow."""
        ...

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        """Decisions for several flows, in order."""
        ...


def is_test_module(path: Path) -> bool:
    return path.name.endswith("_test.rego")


def policy_files(policy_dir: Path, *, include_tests: bool = False) -> list[Path]:
    """The .rego and .json files of a policy directory, sorted by relative path."""
    rego_dir, data_dir = policy_dir / "rego", policy_dir / "data"
    if not rego_dir.is_dir():
        raise PolicyLoadError(f"{rego_dir}: no rego directory in policy dir {policy_dir}")
    if not data_dir.is_dir():
        raise PolicyLoadError(f"{data_dir}: no data directory in policy dir {policy_dir}")
    files = [p for p in rego_dir.rglob("*.rego") if include_tests or not is_test_module(p)]
    files += list(data_dir.rglob("*.json"))
    return sorted(files, key=lambda p: p.relative_to(policy_dir).as_posix())


def compute_revision(policy_dir: Path) -> str:
    """``sha256:`` over the sorted relative paths and contents of every non-test .rego and every .json file.

    Tests (``*_test.rego``) are left out: they cannot change a decision, so editing a test keeps the
    revision that the audit trail records. Each file contributes ``<relative path> NUL <bytes> NUL``.
    """
    digest = hashlib.sha256()
    for path in policy_files(policy_dir):
        digest.update(path.relative_to(policy_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def load_data(policy_dir: Path, revision: str | None = None) -> dict[str, Any]:
    """The base document: ``{"residency_data": {<file stem>: <content>}, "residency_meta": {...}}``."""
    data: dict[str, Any] = {}
    for path in sorted((policy_dir / "data").rglob("*.json")):
        rel = path.relative_to(policy_dir).as_posix()
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyLoadError(f"{rel}: cannot load JSON data: {exc}") from exc
        if path.stem in data:
            raise PolicyLoadError(f"{rel}: a data file named {path.stem}.json is already loaded")
        data[path.stem] = content
    document: dict[str, Any] = {DATA_ROOT: data}
    if revision is not None:
        document[META_ROOT] = {"revision": revision}
    return document


# Serialises the fd 1 swap: two threads swapping concurrently could leave stdout pointing at stderr.
_REDIRECT_LOCK = threading.RLock()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """rego-cpp prints compile errors on the process's standard output; keep it clean for JSON output.

    Process-wide (file descriptor 1), so one thread at a time: loading policies in several threads
    (a running service checking a candidate while an API request checks a draft) serialises here.
    """
    with _REDIRECT_LOCK:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):
            yield
            return
        try:
            os.dup2(2, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


_ERROR_RE = re.compile(r"\(error \d+:(?P<file>[^|\n]+)\|(?P<offset>\d+)\|\d+\s*\(errormsg \d+:(?P<msg>[^\n]*)\)")


def describe_rego_error(exc: Exception, sources: dict[str, str]) -> str:
    """One line from a regopy error: ``file:line: message`` for the first error."""
    text = str(exc.args[0]) if exc.args else str(exc)
    match = _ERROR_RE.search(text)
    if not match:
        return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    name, offset, msg = match.group("file"), int(match.group("offset")), match.group("msg").strip()
    line = sources.get(name, "")[:offset].count("\n") + 1 if name in sources else 0
    more = text.count("(error ") - 1
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"{name}:{line}: {msg}{suffix}" if line else f"{name}: {msg}{suffix}"


def read_modules(policy_dir: Path, *, include_tests: bool = False) -> dict[str, str]:
    """Relative path -> source of the .rego files."""
    modules = {}
    for path in policy_files(policy_dir, include_tests=include_tests):
        if path.suffix != ".rego":
            continue
        rel = path.relative_to(policy_dir).as_posix()
        try:
            modules[rel] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyLoadError(f"{rel}: cannot read: {exc}") from exc
    return modules


def new_interpreter(modules: dict[str, str], data: dict[str, Any]) -> Any:
    """A regopy Interpreter holding the data and modules; PolicyLoadError names the failing file."""
    try:
        import regopy
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise PolicyLoadError(f"regopy is not installed: {exc}") from exc
    interpreter = regopy.Interpreter()
    try:
        interpreter.add_data_json(json.dumps(data))
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"data: rejected by rego-cpp: {describe_rego_error(exc, modules)}") from exc
    with _stdout_to_stderr():
        for name, source in modules.items():
            try:
                interpreter.add_module(name, source)
            except regopy.RegoError as exc:
                raise PolicyLoadError(describe_rego_error(exc, modules)) from exc
    return interpreter


def parse_output(text: str, what: str) -> Any:
    """The value of a one-expression rego-cpp answer; PolicyEvaluationError when undefined or malformed.

    The bundle query is ``x = <document>``, so a defined answer is
    ``{"expressions":[true], "bindings":{"x": <value>}}``.
    """
    if text.strip() == "undefined":
        raise PolicyEvaluationError(f"{what} is undefined")
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyEvaluationError(f"{what}: malformed answer from rego-cpp: {exc}") from exc
    if isinstance(answer, list):
        if len(answer) != 1:
            raise PolicyEvaluationError(f"{what}: {len(answer)} results, expected one")
        answer = answer[0]
    if not isinstance(answer, dict):
        raise PolicyEvaluationError(f"{what}: unexpected answer {text[:200]}")
    bindings = answer.get("bindings")
    if isinstance(bindings, dict) and "x" in bindings:
        return bindings["x"]
    expressions = answer.get("expressions")
    if isinstance(expressions, list) and len(expressions) == 1:
        return expressions[0]
    raise PolicyEvaluationError(f"{what}: unexpected answer {text[:200]}")


def validate_decision(value: Any, what: str = DECISION_DOCUMENT) -> Decision:
    if not isinstance(value, dict):
        raise PolicyEvaluationError(f"{what} is not an object: {str(value)[:200]}")
    try:
        return Decision.model_validate(value)
    except ValidationError as exc:
        raise PolicyEvaluationError(f"{what} does not match the decision contract: {exc.errors()[0]}") from exc


class EmbeddedPolicyEngine:
    """Evaluates the Rego policy in-process with regopy. Thread-safe (one lock around the interpreter)."""

    def __init__(self, modules: dict[str, str], data: dict[str, Any], revision: str, source: str = "<memory>"):
        import regopy
        from regopy.rego_shared import rego_bundle_query, rego_output_ok, rego_output_string

        self._regopy = regopy
        self._bundle_query = rego_bundle_query
        self._output_ok = rego_output_ok
        self._output_string = rego_output_string
        self._modules = dict(modules)
        self._data = data
        self._revision = revision
        self.source = source
        builder = new_interpreter(self._modules, data)
        try:
            with _stdout_to_stderr():
                self._bundle = builder.build(f"x = {DECISION_DOCUMENT}", [DECISION_PATH])
        except regopy.RegoError as exc:
            raise PolicyLoadError(f"{source}: does not compile: {describe_rego_error(exc, self._modules)}") from exc
        if not self._bundle.ok():
            raise PolicyLoadError(f"{source}: rego-cpp could not build a bundle for {DECISION_DOCUMENT}")
        self._builder = builder
        self._runner = regopy.Interpreter()
        self._lock = threading.Lock()
        try:
            self.evaluate(_SMOKE_FLOW)
        except PolicyEvaluationError as exc:
            raise PolicyLoadError(f"{source}: {DECISION_DOCUMENT} does not evaluate: {exc}") from exc

    @classmethod
    def from_dir(cls, path: Path = DEFAULT_POLICY_DIR) -> EmbeddedPolicyEngine:
        """Load every non-test .rego file and every data .json file of a policy directory."""
        path = Path(path)
        revision = compute_revision(path)
        return cls(read_modules(path), load_data(path, revision), revision, source=str(path))

    @property
    def revision(self) -> str:
        return self._revision

    def evaluate(self, value: Any) -> Any:
        """The raw decision document for any JSON value as ``input`` (used by the OPA stand-in in tests)."""
        try:
            term = json.dumps(value, ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PolicyEvaluationError(f"input is not JSON-serialisable: {exc}") from exc
        with self._lock:
            try:
                self._runner.set_input_term(term)
                output = self._bundle_query(self._runner._impl, self._bundle._impl)
                ok = self._output_ok(output)
                text = self._output_string(output)
            except self._regopy.RegoError as exc:
                raise PolicyEvaluationError(f"{DECISION_DOCUMENT}: {describe_rego_error(exc, self._modules)}") from exc
        if not ok:
            detail = text.strip()[:300]
            if detail in ("", "<error>"):
                detail = (
                    "<error> (rego-cpp gives no detail: e.g. a function with two values for one input, "
                    "which OPA names eval_conflict_error)"
                )
            raise PolicyEvaluationError(f"{DECISION_DOCUMENT}: evaluation error for this input: {detail}")
        return parse_output(text, DECISION_DOCUMENT)

    def decide(self, flow: Flow) -> Decision:
        return validate_decision(self.evaluate(flow.to_input()))

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(flow) for flow in flows]

    def document(self, path: str, value: Any) -> Any:
        """Another document of the policy (e.g. ``residency/raw_processing``) for ``value`` as input. Not on the
        hot path (it recompiles: :meth:`query`); PolicyEvaluationError when undefined."""
        result = self.query(f"x = data.{path.strip('/').replace('/', '.')}", value)
        if result is None:
            raise PolicyEvaluationError(f"data.{path.strip('/').replace('/', '.')} is undefined")
        return result

    def query(self, query: str, value: Any = None) -> Any | None:
        """Evaluate any query with ``Interpreter.query`` (slow: recompiles); ``None`` when undefined.

        For diagnostics and tests, e.g. to show that a rule which only takes its ``default`` value is
        undefined in rego-cpp when queried alone.
        """
        with self._lock:
            try:
                self._builder.set_input_term(json.dumps(value if value is not None else {}))
                output = self._builder.query(query)
                text = str(output)
            except self._regopy.RegoError as exc:
                raise PolicyEvaluationError(f"{query}: {describe_rego_error(exc, self._modules)}") from exc
        if text.strip() == "undefined":
            return None
        return parse_output(text, query)
