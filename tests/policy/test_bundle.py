"""OPA bundles (``python -m policy bundle``) and drafts read back from archives or file maps."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from policy import DEFAULT_POLICY_DIR, EmbeddedPolicyEngine, Flow, compute_revision
from policy.bundle import (
    ROOTS,
    build_bundle,
    bundle_files,
    files_from_archive,
    files_from_mapping,
    read_policy_dir,
    targz,
    write_policy_dir,
)
from policy.errors import PolicyDraftError
from tests.policy.test_cli import run

DATA_FILES = sorted(p.stem for p in (DEFAULT_POLICY_DIR / "data").glob("*.json"))
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)


def _read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]  # regular members always have a file object


def _under_a_root(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def test_bundle_layout_is_what_opa_loads(tmp_path: Path):
    out = tmp_path / "bundle.tar.gz"
    proc = run("bundle", str(out))
    assert proc.returncode == 0, proc.stderr
    files = _read(out)
    manifest = json.loads(files[".manifest"])
    revision = compute_revision(DEFAULT_POLICY_DIR)
    assert manifest["revision"] == revision
    assert manifest["roots"] == ROOTS == ["residency", "residency_data", "residency_meta"]
    assert manifest["rego_version"] == 1
    # data.residency_data.<stem>: one data.json per data file, byte for byte the source file
    for stem in DATA_FILES:
        assert files[f"residency_data/{stem}/data.json"] == (DEFAULT_POLICY_DIR / "data" / f"{stem}.json").read_bytes()
    assert json.loads(files["residency_meta/data.json"]) == {"revision": revision}
    rego = sorted(n for n in files if n.endswith(".rego"))
    assert rego == sorted(
        p.relative_to(DEFAULT_POLICY_DIR).as_posix()
        for p in (DEFAULT_POLICY_DIR / "rego").rglob("*.rego")
        if not p.name.endswith("_test.rego")
    )
    # OPA refuses a bundle whose data or packages fall outside its roots; roots must not overlap.
    roots = manifest["roots"]
    for name in files:
        if name.endswith("data.json"):
            assert _under_a_root(name.rsplit("/", 1)[0], roots), name
    for name in rego:
        package = _PACKAGE.search(files[name].decode()).group(1).replace(".", "/")  # type: ignore[union-attr]  # every policy module declares its package
        assert _under_a_root(package, roots), (name, package)
    for a in roots:
        assert not any(b != a and _under_a_root(b, [a]) for b in roots)
    assert set(files) == {
        ".manifest",
        "residency_meta/data.json",
        *rego,
        *(f"residency_data/{s}/data.json" for s in DATA_FILES),
    }


def test_bundle_with_tests_adds_the_test_root():
    revision, files = bundle_files(DEFAULT_POLICY_DIR, with_tests=True)
    manifest = json.loads(files[".manifest"])
    assert "residency_test" in manifest["roots"]
    tests = [n for n in files if n.endswith("_test.rego")]
    assert len(tests) >= 7
    assert manifest["revision"] == revision == compute_revision(DEFAULT_POLICY_DIR)  # tests never change it
    for name in tests:
        package = _PACKAGE.search(files[name].decode()).group(1).replace(".", "/")  # type: ignore[union-attr]  # every policy module declares its package
        assert _under_a_root(package, manifest["roots"])


def test_bundle_directory_output(tmp_path: Path):
    revision = build_bundle(DEFAULT_POLICY_DIR, tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / ".manifest").read_text())["revision"] == revision
    assert (tmp_path / "bundle" / "residency_data" / "regimes" / "data.json").is_file()


def test_archive_round_trip_restores_the_exact_policy(tmp_path: Path):
    _, files = bundle_files(DEFAULT_POLICY_DIR, with_tests=True)
    restored = files_from_archive(targz(files))
    assert restored == read_policy_dir(DEFAULT_POLICY_DIR)
    target = write_policy_dir(restored, tmp_path / "restored")
    assert compute_revision(target) == compute_revision(DEFAULT_POLICY_DIR)
    decision = EmbeddedPolicyEngine.from_dir(target).decide(Flow(origin="DE", destination="US", category="machine"))
    assert decision.allow


def test_policy_directory_archive_is_accepted_with_a_top_directory(policy_copy: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(policy_copy / "rego", arcname="draft/rego")
        tar.add(policy_copy / "data", arcname="draft/data")
    files = files_from_archive(buffer.getvalue())
    assert files == read_policy_dir(policy_copy)


def test_tampered_bundle_is_refused(policy_copy: Path):
    _, files = bundle_files(policy_copy)
    files["residency_data/thresholds/data.json"] = files["residency_data/thresholds/data.json"].replace(
        b"1000000", b"2000000"
    )
    with pytest.raises(PolicyDraftError, match=r"hash to .* but its \.manifest says revision"):
        files_from_archive(targz(files))


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"../rego/x.rego": b"package x"}, "inside the policy directory"),
        ({"/etc/passwd": b""}, "absolute"),
        ({"rego/x.rego": b"package x", "data/a.json": b"{}", "setup.py": b""}, "may only hold"),
        ({"rego/x.rego": b"package x"}, "no data/ files"),
        ({"data/a.json": b"{}"}, "no rego/ files"),
    ],
)
def test_bad_paths_are_refused(files: dict[str, bytes], match: str):
    with pytest.raises(PolicyDraftError, match=match):
        files_from_archive(targz(files))


def test_links_and_garbage_are_refused():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("rego/link.rego")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(PolicyDraftError, match="only regular files and directories"):
        files_from_archive(buffer.getvalue())
    with pytest.raises(PolicyDraftError, match=r"not a readable tar archive"):
        files_from_archive(b"\x1f\x8b not really gzip")


def test_size_limit():
    files = {"rego/x.rego": b"package residency\n" + b"#" * 5000, "data/a.json": b"{}"}
    with pytest.raises(PolicyDraftError, match="more than 1024 bytes"):
        files_from_archive(targz(files), max_bytes=1024)


def test_file_mapping():
    files = files_from_mapping({"rego/residency/x.rego": "package residency\n", "data/a.json": "{}"})
    assert files == {"data/a.json": b"{}", "rego/residency/x.rego": b"package residency\n"}
    with pytest.raises(PolicyDraftError, match="strings"):
        files_from_mapping({"rego/x.rego": 5})
    with pytest.raises(PolicyDraftError, match="non-empty JSON object"):
        files_from_mapping([])
