"""The OPA bundle of the compose deployment, built for real: the `python -m policy bundle` command of the
policy-bundle service (docker-compose.yml), its container paths mapped to the repository's policy/ and a
temporary directory standing for the policy-bundles volume, then checked the way OPA will read it, and
loaded back through regopy as OPA would assemble it: a decision served from this bundle carries the
real policy revision, not "unset".
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from policy import EmbeddedPolicyEngine, Flow, compute_revision
from policy.bundle import files_from_archive
from tests.deploy import compose_checks as cc
from tests.deploy.test_compose import TEST_ENV

POLICY_DIR = cc.REPO_ROOT / "policy"
_DATA_REF = re.compile(r"\bdata((?:\.[A-Za-z_]\w*)+)")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)
FLOWS = [
    {"origin": "DE", "destination": "US", "category": "personal", "safeguards": ["SCC", "TIA"]},
    {"origin": "CN", "destination": "DE", "category": "personal", "volume": {"individuals_ytd": 250000}},
    {"origin": "DE", "destination": "FR", "category": "machine"},
    {"origin": "VN", "destination": "SG", "category": "personal"},
]


@pytest.fixture(scope="module")
def compose() -> cc.Compose:
    return cc.load_compose(TEST_ENV)


@pytest.fixture(scope="module")
def job(compose: cc.Compose) -> cc.BundleJob:
    jobs = cc.bundle_jobs(compose, cc.REPO_ROOT)
    assert [j.service for j in jobs] == ["policy-bundle"]
    assert jobs[0].problems == []
    return jobs[0]


@pytest.fixture(scope="module")
def volume(compose: cc.Compose, job: cc.BundleJob, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy-bundles volume after the job ran: its script's bundle and mv commands, with paths mapped."""
    svc = compose["services"][job.service]
    where = cc.mount_of(svc, job.out)
    assert where is not None
    mount_target = where[0].target.rstrip("/")
    host_volume = tmp_path_factory.mktemp("policy-bundles")
    source = cc.container_source(svc, job.policy_dir, cc.REPO_ROOT)
    assert source is not None and source.resolve() == POLICY_DIR.resolve()

    def host(arg: str) -> str:
        if arg == job.policy_dir:
            return str(source)
        if arg.startswith(mount_target + "/"):
            return str(host_volume / arg[len(mount_target) + 1 :])
        return arg

    commands = cc.service_commands(svc).argvs
    start = commands.index(job.argv)
    for argv in commands[start:]:
        if argv[:1] == ["mv"]:
            src, dst = (host(a) for a in argv[1:] if not a.startswith("-"))
            Path(src).replace(dst)
            continue
        proc = subprocess.run(
            [sys.executable, *[host(a) for a in argv[1:]]],
            cwd=cc.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "revision sha256:" in proc.stdout
    return host_volume


@pytest.fixture(scope="module")
def bundle(job: cc.BundleJob, volume: Path) -> dict[str, bytes]:
    path = volume / str(job.path_in_volume)
    assert path.is_file(), sorted(p.name for p in volume.iterdir())
    assert sorted(p.name for p in volume.iterdir()) == [path.name], "the temporary file was renamed into place"
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b", "a gzip stream"
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for member in tar:
            assert member.isreg(), f"{member.name}: only regular files"
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
            handle = tar.extractfile(member)
            assert handle is not None
            files[member.name] = handle.read()
    gzip.decompress(raw)  # the whole stream is complete
    return files


@pytest.fixture(scope="module")
def manifest(bundle: dict[str, bytes]) -> dict[str, Any]:
    loaded = json.loads(bundle[".manifest"])
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def embedded() -> EmbeddedPolicyEngine:
    return EmbeddedPolicyEngine.from_dir(POLICY_DIR)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def test_every_cells_opa_serves_the_file_the_job_leaves(compose: cc.Compose, job: cc.BundleJob) -> None:
    """One OPA per cell (its decisions are taken inside the cell), each serving this same bundle."""
    names = cc.opa_services(compose)
    assert sorted(names) == ["opa-ap", "opa-cn", "opa-global"]
    for name in names:
        opa = compose["services"][name]
        (path,) = [p for _, p in cc.opa_paths(cc.command(opa))]
        where = cc.mount_of(opa, path)
        assert where is not None
        mount, rel = where
        assert (mount.kind, mount.source, rel, mount.read_only) == ("volume", job.volume, job.path_in_volume, True)
        assert cc.depends_on(opa)[job.service] == "service_completed_successfully"


def test_manifest_revision_is_the_policy_revision(manifest: dict[str, Any], embedded: EmbeddedPolicyEngine) -> None:
    """The revision OPA reports (GET /v1/data/system/bundles) is the one the embedded engine computes."""
    assert manifest["revision"] == embedded.revision == compute_revision(POLICY_DIR)
    assert manifest["revision"].startswith("sha256:")
    assert manifest["rego_version"] == 1


def test_roots_cover_everything_the_bundle_holds_and_the_rego_reads(
    bundle: dict[str, bytes], manifest: dict[str, Any]
) -> None:
    """OPA refuses a bundle with data or packages outside its roots, and overlapping roots; a data path the
    Rego reads outside the roots could be shadowed by another bundle. Every data.<...> reference of the
    served Rego is under a root and, for the data roots, backed by a file of the bundle."""
    roots = manifest["roots"]
    assert len(set(roots)) == len(roots)
    assert not any(a != b and _under(b, [a]) for a in roots for b in roots)
    rego = {name: content.decode() for name, content in bundle.items() if name.endswith(".rego")}
    assert rego, "the bundle holds the policy"
    assert not any(name.endswith("_test.rego") for name in rego), "the tests are not served"
    for name, source in rego.items():
        match = _PACKAGE.search(source)
        assert match, name
        assert _under(match.group(1).replace(".", "/"), roots), (name, match.group(1))
    data_dirs = {name.rsplit("/", 1)[0] for name in bundle if name.endswith("/data.json")}
    assert all(_under(d, roots) for d in data_dirs), data_dirs
    packages = {m.group(1).replace(".", "/") for s in rego.values() if (m := _PACKAGE.search(s))}
    refs = {ref.lstrip(".").replace(".", "/") for s in rego.values() for ref in _DATA_REF.findall(s)}
    assert refs, "the Rego reads data"
    for ref in sorted(refs):
        assert _under(ref, roots) or ref in roots, ref
        if _under(ref, packages):
            continue  # a rule of the policy itself
        backing = [d for d in data_dirs if _under(ref, [d]) or _under(d, [ref])]
        assert backing, f"data.{ref.replace('/', '.')} is read by the Rego but no data.json of the bundle holds it"


def test_data_files_sit_where_the_rego_reads_them(bundle: dict[str, bytes], manifest: dict[str, Any]) -> None:
    """policy/data/<stem>.json -> residency_data/<stem>/data.json, byte for byte (data.residency_data.<stem>);
    residency_meta/data.json carries the revision (data.residency_meta.revision)."""
    stems = sorted(p.stem for p in (POLICY_DIR / "data").glob("*.json"))
    assert stems
    for stem in stems:
        assert bundle[f"residency_data/{stem}/data.json"] == (POLICY_DIR / "data" / f"{stem}.json").read_bytes()
    assert json.loads(bundle["residency_meta/data.json"]) == {"revision": manifest["revision"]}
    expected = {".manifest", "residency_meta/data.json", *(f"residency_data/{s}/data.json" for s in stems)}
    assert {n for n in bundle if not n.endswith(".rego")} == expected


def _opa_document(bundle: dict[str, bytes]) -> dict[str, Any]:
    """The data document OPA builds from a bundle: each <a>/<b>/data.json at data.a.b. Nothing injected."""
    document: dict[str, Any] = {}
    for name, content in bundle.items():
        if not name.endswith("/data.json"):
            continue
        node = document
        *parents, leaf = name[: -len("/data.json")].split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(content)
    return document


def test_a_decision_served_from_the_bundle_carries_the_real_revision(
    bundle: dict[str, bytes], manifest: dict[str, Any], embedded: EmbeddedPolicyEngine
) -> None:
    """Load the bundle as OPA does (its modules, its data tree; the engine injects no revision: the
    revision argument below is only what `.revision` reports) and decide: policy_revision is the
    manifest's, and every decision equals the embedded engine's."""
    modules = {name: content.decode() for name, content in bundle.items() if name.endswith(".rego")}
    served = EmbeddedPolicyEngine(modules, _opa_document(bundle), revision="not-injected", source="bundle")
    for raw in FLOWS:
        flow = Flow.parse(raw)
        decision = served.decide(flow)
        assert decision.policy_revision == manifest["revision"] != "unset"
        assert decision == embedded.decide(flow), raw


def test_without_residency_meta_the_revision_would_be_unset(bundle: dict[str, bytes]) -> None:
    """What the old deployment (policy/rego and policy/data loaded as files) served: the same policy
    without residency_meta. This is the gap the bundle closes."""
    modules = {name: content.decode() for name, content in bundle.items() if name.endswith(".rego")}
    document = _opa_document({n: c for n, c in bundle.items() if not n.startswith("residency_meta/")})
    served = EmbeddedPolicyEngine(modules, document, revision="-", source="files")
    assert served.decide(Flow.parse(FLOWS[0])).policy_revision == "unset"


def test_the_archive_reads_back_as_the_policy_directory(job: cc.BundleJob, volume: Path) -> None:
    """policy.bundle reads the archive back (it re-hashes the files and refuses a manifest revision that
    does not match them): the files are the repository's policy, tests left out."""
    files = files_from_archive((volume / str(job.path_in_volume)).read_bytes())
    expected = {
        p.relative_to(POLICY_DIR).as_posix()
        for p in [*(POLICY_DIR / "rego").rglob("*.rego"), *(POLICY_DIR / "data").glob("*.json")]
        if not p.name.endswith("_test.rego")
    }
    assert set(files) == expected
    assert all(files[name] == (POLICY_DIR / name).read_bytes() for name in files)
