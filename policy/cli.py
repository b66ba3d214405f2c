"""``python -m policy``: decide a flow, run the Rego tests, print the revision, build an OPA bundle."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

from policy.engine import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, compute_revision, is_test_module, load_data
from policy.errors import PolicyError, PolicyInputError
from policy.models import Flow

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _engine(args: argparse.Namespace):
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

    def per_call(fn, n: int, label: str) -> float:
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


def build_bundle(policy_dir: Path, out: Path) -> str:
    """Write an OPA bundle (directory, or .tar.gz when ``out`` ends so) and return its revision.

    Layout: the non-test .rego files, ``residency_data/<name>/data.json`` per data file,
    ``residency_meta/data.json`` with the revision, and ``.manifest`` whose revision OPA reports at
    ``/v1/data/system/bundles``.
    """
    revision = compute_revision(policy_dir)
    document = load_data(policy_dir, revision)
    files: dict[str, bytes] = {
        ".manifest": json.dumps(
            {"revision": revision, "roots": ["residency", "residency_data", "residency_meta"]}, indent=2
        ).encode(),
        "residency_meta/data.json": json.dumps(document["residency_meta"], indent=2).encode(),
    }
    for name, content in document["residency_data"].items():
        files[f"residency_data/{name}/data.json"] = json.dumps(content, indent=2, ensure_ascii=False).encode()
    for path in sorted((policy_dir / "rego").rglob("*.rego")):
        if not is_test_module(path):
            files[path.relative_to(policy_dir).as_posix()] = path.read_bytes()
    if out.name.endswith(".tar.gz"):
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as tar:
            for name, content in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    else:
        if out.exists():
            shutil.rmtree(out)
        for name, content in files.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    return revision


def cmd_bundle(args: argparse.Namespace) -> int:
    try:
        revision = build_bundle(args.policy_dir, args.out)
    except (PolicyError, OSError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    print(f"wrote {args.out} (revision {revision})")
    return EXIT_OK


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
    p = sub.add_parser("test", help="run every test_ rule of the *_test.rego files")
    common(p, opa=False)
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing tests")
    p.set_defaults(func=cmd_test)
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
    p.set_defaults(func=cmd_bundle)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
