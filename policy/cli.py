"""``python -m policy``: decide a flow, run the Rego tests, replay recorded traffic against a draft (what-if),
print the revision, build an OPA bundle."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from policy.bundle import build_bundle
from policy.engine import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, compute_revision
from policy.errors import PolicyError, PolicyInputError
from policy.models import Flow

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from policy.opa_client import OpaPolicyEngine

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _engine(args: argparse.Namespace) -> EmbeddedPolicyEngine | OpaPolicyEngine:
    if args.opa_url:
        from policy.opa_client import OpaPolicyEngine

        return OpaPolicyEngine(args.opa_url)
    return EmbeddedPolicyEngine.from_dir(args.policy_dir)


def cmd_decide(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        _err("no input: pipe one flow as a JSON object into standard input")
        return EXIT_USAGE
    try:
        flow = Flow.parse_json(raw)
    except PolicyInputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        decision = _engine(args).decide(flow)
    except (PolicyError, ValueError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    json.dump(decision.to_contract(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_processing(args: argparse.Namespace) -> int:
    """Where a raw payload may be processed (residency cells): one request (JSON) on stdin."""
    from policy.processing import RAW_PROCESSING_PATH, RawProcessing

    raw = sys.stdin.buffer.read()
    try:
        request = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        _err(f"not JSON: {exc}")
        return EXIT_USAGE
    if not isinstance(request, dict) or not {"origin", "processing_country", "categories"} <= set(request):
        _err('pipe one JSON object with "origin", "processing_country" and "categories" into standard input')
        return EXIT_USAGE
    try:
        answer = RawProcessing.model_validate(_engine(args).document(RAW_PROCESSING_PATH, request))
    except (PolicyError, ValueError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    json.dump(answer.model_dump(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from policy import rego_tests

    try:
        results = rego_tests.run(args.policy_dir)
    except PolicyError as exc:
        _err(str(exc))
        return EXIT_FAIL
    for result in results:
        if not result.passed:
            print(f"FAIL {result.test.id}: {result.detail}")
        elif args.verbose:
            print(f"PASS {result.test.id}")
    print(rego_tests.kinds(results))
    print(rego_tests.summary(results))
    if not results:
        _err(f"no test_ rules found in {args.policy_dir}/rego/**/*_test.rego")
        return EXIT_FAIL
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAIL


def cmd_revision(args: argparse.Namespace) -> int:
    try:
        if args.opa_url:
            print(_engine(args).revision)
        else:
            print(compute_revision(args.policy_dir))
    except (PolicyError, ValueError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    return EXIT_OK


def cmd_invariants(args: argparse.Namespace) -> int:
    """Check a policy directory (or an OPA server) against the platform's invariants (policy/invariants.yaml)."""
    from policy import invariants

    try:
        found = invariants.load(args.invariants or invariants.DEFAULT_INVARIANTS_FILE)
        engine = _engine(args)
        violations = invariants.check(engine, found)
    except (PolicyError, ValueError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    broken = sorted({v.invariant.id for v in violations})
    if args.json:
        json.dump(
            {
                "revision": engine.revision,
                "invariants": len(found.invariants),
                "flows": len(found.flows()),
                "broken": broken,
                "violations": [
                    {
                        "invariant": v.invariant.id,
                        "title": v.invariant.title,
                        "basis": v.invariant.basis,
                        "flow": v.flow.to_input(),
                        "problem": v.problem,
                    }
                    for v in violations
                ],
            },
            sys.stdout,
            indent=2,
            ensure_ascii=False,
        )
        sys.stdout.write("\n")
    else:
        for v in violations:
            print(f"BROKEN {v.describe()}")
        print(
            f"{len(found.flows())} flows of {len(found.invariants)} invariants: {len(broken)} broken"
            + (f" ({', '.join(broken)})" if broken else "")
        )
    return EXIT_FAIL if violations else EXIT_OK


BENCH_FLOWS = [
    {"origin": "DE", "destination": "US", "category": "machine"},
    {"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC", "TIA"]},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 250000}},
    {"origin": "CN", "destination": "SG", "category": "personal", "entity": {"ciio": True}},
    {
        "origin": "US",
        "destination": "CN",
        "category": "sensitive_personal",
        "volume": {"sensitive_individuals_ytd": 50},
    },
    {"origin": "VN", "destination": "SG", "category": "personal", "safeguards": ["VN_TIA_FILED"]},
    {"origin": "DE", "destination": "FR", "category": "personal", "subject": {"citizenship": "RU"}},
    {"origin": "SG", "destination": "US", "category": "personal"},
]


def cmd_bench(args: argparse.Namespace) -> int:
    """Microseconds per decision: Interpreter.query (baseline), bundle (what the engine uses), cached."""
    import time

    from policy.cache import CachedPolicyEngine

    engine = EmbeddedPolicyEngine.from_dir(args.policy_dir)
    flows = [Flow.parse(f) for f in BENCH_FLOWS]

    def per_call(fn: Callable[[Flow], object], n: int, label: str) -> float:
        start = time.perf_counter()
        for i in range(n):
            fn(flows[i % len(flows)])
            if args.progress and (i + 1) % max(1, n // 10) == 0:
                print(f"  {label}: {i + 1}/{n}", file=sys.stderr)
        return (time.perf_counter() - start) / n * 1e6

    baseline = per_call(lambda f: engine.query("data.residency.decision", f.to_input()), args.baseline_n, "query")
    bundle = per_call(engine.decide, args.n, "bundle")
    cached_engine = CachedPolicyEngine(engine, maxsize=1024)
    cached_engine.decide_many(flows)
    cached = per_call(cached_engine.decide, args.n * 50, "cached")
    print(f"Interpreter.query per call (baseline): {baseline:12.1f} us/decision")
    print(f"build + query_bundle (embedded engine): {bundle:11.1f} us/decision  {baseline / bundle:8.1f}x faster")
    print(f"CachedPolicyEngine, all hits:           {cached:11.1f} us/decision  {baseline / cached:8.1f}x faster")
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    try:
        revision = build_bundle(args.policy_dir, args.out, with_tests=args.with_tests)
    except (PolicyError, OSError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    print(f"wrote {args.out} (revision {revision})")
    return EXIT_OK


def cmd_whatif(args: argparse.Namespace) -> int:
    from ingest.store.recorded_decisions import read_patterns  # the ingest reads its decision log
    from policy import whatif

    try:
        since = whatif.parse_time(args.since) if args.since else None
        until = whatif.parse_time(args.until) if args.until else None
        window = whatif.parse_window(args.window) if args.window else None
        since, until = whatif.resolve_window(since, until, window)
        if args.limit is not None and args.limit < 1:
            raise ValueError("--limit must be at least 1")
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if not args.control_dsn:
        _err("no control store: pass --control-dsn or set INGEST_CONTROL_DSN")
        return EXIT_USAGE
    try:
        engine = EmbeddedPolicyEngine.from_dir(args.draft_dir)
    except PolicyError as exc:
        _err(f"draft {args.draft_dir}: {exc}")
        return EXIT_FAIL
    with _progress(enabled=not args.no_progress) as progress:
        try:
            patterns = read_patterns(args.control_dsn, since=since, until=until, limit=args.limit, progress=progress)
        except Exception as exc:  # driver errors: one line naming the store, not a traceback
            _err(f"control store: {type(exc).__name__}: {exc}")
            return EXIT_FAIL
        report = whatif.replay(
            patterns, engine, since=since, until=until, progress=progress, examples_per_change=args.examples
        )
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for line in whatif.render_text(report):
            print(line)
    return EXIT_OK


class _progress:
    """A rich progress bar on stderr fed by ``progress(stage, done, total)`` calls (no-op when disabled)."""

    LABELS = {"read": "reading recorded decisions (hour slices)", "evaluate": "evaluating distinct inputs"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Callable[[str, int, int | None], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int | None) -> None:
        assert self._bar is not None
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(self.LABELS.get(stage, stage), total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m policy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, opa: bool) -> None:
        p.add_argument("--policy-dir", type=Path, default=DEFAULT_POLICY_DIR, help="directory holding rego/ and data/")
        if opa:
            p.add_argument("--opa-url", default=None, help="ask this OPA server instead of the embedded engine")

    p = sub.add_parser("decide", help="read one flow (JSON) on stdin, print its decision (JSON)")
    common(p, opa=True)
    p.set_defaults(func=cmd_decide)
    p = sub.add_parser(
        "processing",
        help="read a raw-processing request (JSON) on stdin: may a site's raw payload "
        "be processed in that country (residency cells)?",
    )
    common(p, opa=True)
    p.set_defaults(func=cmd_processing)
    p = sub.add_parser("test", help="run every test_ rule of the *_test.rego files")
    common(p, opa=False)
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing tests")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("invariants", help="check the platform's residency invariants (what no revision may decide)")
    common(p, opa=True)
    p.add_argument(
        "--invariants",
        type=Path,
        default=None,
        help="the invariants file (default: policy/invariants.yaml, shipped with the platform)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_invariants)
    p = sub.add_parser("revision", help="print the policy revision (sha256 of policy and data)")
    common(p, opa=True)
    p.set_defaults(func=cmd_revision)
    p = sub.add_parser("bench", help="measure microseconds per decision (query vs bundle vs cache)")
    common(p, opa=False)
    p.add_argument("-n", type=int, default=200, help="decisions per measurement (default 200)")
    p.add_argument("--baseline-n", type=int, default=16, help="decisions for the slow query baseline (default 16)")
    p.add_argument("--progress", action="store_true", help="print progress on stderr")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("bundle", help="write an OPA bundle (directory or .tar.gz) with its revision")
    common(p, opa=False)
    p.add_argument("out", type=Path)
    p.add_argument(
        "--with-tests",
        action="store_true",
        help="include the *_test.rego files (root residency_test): what a draft uploaded to the ingest API needs",
    )
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser(
        "whatif",
        help="replay the recorded decisions of a window against a draft policy directory",
        description="Replays the policy inputs the ingest recorded in the control store's decisions table "
        "against DRAFT_DIR (same layout as policy/) and reports what would change.",
    )
    p.add_argument("draft_dir", type=Path, metavar="DRAFT_DIR", help="draft policy directory (rego/ and data/)")
    p.add_argument(
        "--control-dsn",
        default=os.environ.get("INGEST_CONTROL_DSN"),
        help="control store DSN (default: $INGEST_CONTROL_DSN)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--since", help="start of the window (ISO 8601; UTC when no offset)")
    when.add_argument("--window", help="window length ending at --until, e.g. 30m, 24h, 7d (default 24h)")
    p.add_argument("--until", help="end of the window (ISO 8601; default now)")
    p.add_argument("--limit", type=int, default=None, help="only the newest N decisions of the window")
    p.add_argument("--examples", type=int, default=3, help="examples per changed transition (default 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_whatif)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func  # set_defaults(func=cmd_...) of every subcommand
    return command(args)
