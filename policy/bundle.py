"""OPA bundles of a policy directory, and the way back: archives and file maps to a policy directory.

A policy directory holds ``rego/**/*.rego`` and ``data/**/*.json``. Its OPA bundle holds:

- the non-test ``.rego`` files at their paths (``rego/residency/decision.rego``), plus the ``*_test.rego``
  files with ``with_tests`` (then ``residency_test`` is a root too);
- ``residency_data/<stem>/data.json`` per data file, byte for byte, which OPA serves as
  ``data.residency_data.<stem>``;
- ``residency_meta/data.json`` with ``{"revision": ...}`` (``data.residency_meta.revision``);
- ``.manifest`` with ``revision``, ``roots``, ``rego_version: 1`` and ``metadata.policy_paths`` (bundle path
  -> policy directory path of each data file), so that :func:`files_from_archive` restores the exact bytes
  and paths and the restored directory has the same revision.

Drafts uploaded to the ingest API are either such a bundle or a ``.tar.gz`` of a policy directory, or a
JSON object ``{relative path: file content}``. Nothing is extracted to disk before the paths are checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from policy.archive import ArchiveLimits, check_file_map, read_archive
from policy.engine import DATA_ROOT, META_ROOT, compute_revision, is_test_module, policy_files
from policy.errors import PolicyDraftError

ROOTS = ["residency", DATA_ROOT, META_ROOT]
TEST_ROOT = "residency_test"
MAX_DRAFT_BYTES = 16 * 1024 * 1024


def bundle_files(policy_dir: Path, *, with_tests: bool = False) -> tuple[str, dict[str, bytes]]:
    """(revision, bundle path -> content) of a policy directory."""
    policy_dir = Path(policy_dir)
    revision = compute_revision(policy_dir)
    files: dict[str, bytes] = {
        f"{META_ROOT}/data.json": json.dumps({"revision": revision}, indent=2).encode(),
    }
    data_paths: dict[str, str] = {}
    for path in policy_files(policy_dir, include_tests=with_tests):
        rel = path.relative_to(policy_dir).as_posix()
        if path.suffix == ".rego":
            files[rel] = path.read_bytes()
            continue
        target = f"{DATA_ROOT}/{path.stem}/data.json"
        if target in files:
            raise PolicyDraftError(f"{rel}: a data file named {path.stem}.json is already in the bundle")
        files[target] = path.read_bytes()
        data_paths[target] = rel
    manifest = {
        "revision": revision,
        "roots": [*ROOTS, TEST_ROOT] if with_tests else list(ROOTS),
        "rego_version": 1,
        "metadata": {"policy_paths": data_paths},
    }
    files[".manifest"] = json.dumps(manifest, indent=2).encode()
    return revision, files


def build_bundle(policy_dir: Path, out: Path, *, with_tests: bool = False) -> str:
    """Write the OPA bundle of ``policy_dir`` (a directory, or a .tar.gz when ``out`` ends so); return its revision."""
    revision, files = bundle_files(policy_dir, with_tests=with_tests)
    out = Path(out)
    if out.name.endswith((".tar.gz", ".tgz")):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(targz(files))
    else:
        if out.exists():
            shutil.rmtree(out)
        for name, content in files.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    return revision


def targz(files: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` (sorted, regular files, mode 0644, mtime 0: reproducible)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def files_from_archive(
    archive: bytes, *, max_bytes: int = MAX_DRAFT_BYTES, limits: ArchiveLimits | None = None
) -> dict[str, bytes]:
    """Policy-directory files (``rego/...``, ``data/...``) from a .tar.gz bundle or policy-directory archive.

    Read with bounded memory (:mod:`policy.archive`): ``limits`` (default: :class:`ArchiveLimits` with
    ``max_total_bytes=max_bytes``) bound the entries, each file, the unpacked total and the paths."""
    limits = limits or ArchiveLimits(max_total_bytes=max_bytes)
    raw: dict[str, bytes] = {}
    for name, content in read_archive(archive, limits).items():
        raw[_clean(name)] = content
    if not raw:
        raise PolicyDraftError("the archive is empty")
    raw = _strip_common_dir(raw)
    if ".manifest" in raw or any(name.startswith(f"{DATA_ROOT}/") for name in raw):
        return _from_bundle(raw)
    return check_layout(raw)


def files_from_mapping(
    mapping: object, *, max_bytes: int = MAX_DRAFT_BYTES, limits: ArchiveLimits | None = None
) -> dict[str, bytes]:
    """Policy-directory files from a JSON object ``{relative path: text content}`` (the archive limits apply)."""
    if not isinstance(mapping, dict) or not mapping:
        raise PolicyDraftError("a draft must be a non-empty JSON object of {relative path: file content}")
    limits = limits or ArchiveLimits(max_total_bytes=max_bytes)
    files: dict[str, bytes] = {}
    for name, content in mapping.items():
        if not isinstance(name, str) or not isinstance(content, str):
            raise PolicyDraftError(f"{str(name)[:80]!r}: paths and contents must be strings")
        files[name] = content.encode("utf-8")
    check_file_map(files, limits)
    return check_layout({_clean(name): content for name, content in files.items()})


def check_layout(files: dict[str, bytes]) -> dict[str, bytes]:
    """Only ``rego/**.rego`` and ``data/**.json`` files; at least one of each."""
    for name in files:
        rego = name.startswith("rego/") and name.endswith(".rego")
        data = name.startswith("data/") and name.endswith(".json")
        if not (rego or data):
            raise PolicyDraftError(f"{name}: a policy draft may only hold rego/**/*.rego and data/**/*.json files")
    if not any(name.startswith("rego/") for name in files):
        raise PolicyDraftError("the draft has no rego/ files")
    if not any(name.startswith("data/") for name in files):
        raise PolicyDraftError("the draft has no data/ files")
    return dict(sorted(files.items()))


def write_policy_dir(files: Mapping[str, bytes], target: Path) -> Path:
    """Write checked policy-directory files under ``target`` (created; must not exist or be empty)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name, content in check_layout(dict(files)).items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return target


def read_policy_dir(policy_dir: Path, *, include_tests: bool = True) -> dict[str, bytes]:
    """The files of a policy directory as ``{relative path: bytes}`` (a snapshot, e.g. to store a draft)."""
    policy_dir = Path(policy_dir)
    return {
        path.relative_to(policy_dir).as_posix(): path.read_bytes()
        for path in policy_files(policy_dir, include_tests=include_tests)
    }


def snapshot(policy_dir: Path, parent: Path | None = None) -> Path:
    """Copy the rego/ and data/ files of a policy directory to a new temporary directory.

    Loading, testing and hashing the copy cannot see an edit made half-way through (the revision then
    always matches the content that was loaded).
    """
    files = read_policy_dir(policy_dir)
    return write_policy_dir(files, Path(tempfile.mkdtemp(prefix="policy-", dir=parent)))


def files_digest(files: Mapping[str, bytes]) -> str:
    """``sha256:`` over every file, tests included (the revision leaves tests out): identifies a draft."""
    digest = hashlib.sha256()
    for name, content in sorted(files.items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return "sha256:" + digest.hexdigest()


def count_tests(files: Mapping[str, bytes]) -> int:
    return sum(1 for name in files if is_test_module(Path(name)))


def _clean(name: str) -> str:
    """A safe relative POSIX path, or PolicyDraftError."""
    if "\\" in name or "\0" in name or name.startswith("/"):
        raise PolicyDraftError(f"{name!r}: absolute or non-POSIX paths are not allowed")
    norm = posixpath.normpath(name)
    if norm in (".", "..", "") or norm.startswith("../"):
        raise PolicyDraftError(f"{name!r}: paths must stay inside the policy directory")
    return norm


def _strip_common_dir(raw: dict[str, bytes]) -> dict[str, bytes]:
    """``draft/rego/...`` -> ``rego/...`` when every file sits under one top directory that is not a layout root."""
    tops = {name.split("/", 1)[0] for name in raw}
    if len(tops) != 1 or all("/" not in name for name in raw):
        return raw
    (top,) = tops
    if top in ("rego", "data", DATA_ROOT, META_ROOT):
        return raw
    return {name.split("/", 1)[1]: content for name, content in raw.items()}


def _from_bundle(raw: dict[str, bytes]) -> dict[str, bytes]:
    manifest: dict[str, object] = {}
    if ".manifest" in raw:
        try:
            loaded = json.loads(raw[".manifest"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyDraftError(f".manifest is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise PolicyDraftError(".manifest is not a JSON object")
        manifest = loaded
    metadata = manifest.get("metadata")
    paths = metadata.get("policy_paths", {}) if isinstance(metadata, dict) else {}
    paths = paths if isinstance(paths, dict) else {}
    files: dict[str, bytes] = {}
    for name, content in raw.items():
        if name == ".manifest" or name.startswith(f"{META_ROOT}/"):
            continue
        if name.endswith(".rego"):
            files[name if name.startswith("rego/") else f"rego/{name}"] = content
        elif name.startswith(f"{DATA_ROOT}/") and name.endswith("/data.json"):
            stem = name[len(DATA_ROOT) + 1 : -len("/data.json")]
            target = paths.get(name, f"data/{stem}.json")
            files[_clean(str(target))] = content
        else:
            raise PolicyDraftError(f"{name}: not a file of a residency policy bundle")
    files = check_layout(files)
    declared = manifest.get("revision")
    if isinstance(declared, str) and declared:
        with tempfile.TemporaryDirectory(prefix="policy-bundle-") as tmp:
            actual = compute_revision(write_policy_dir(files, Path(tmp)))
        if actual != declared:
            raise PolicyDraftError(
                f"the bundle's files hash to {actual}, but its .manifest says revision {declared}: "
                "rebuild it with `python -m policy bundle`"
            )
    return files


__all__ = [
    "MAX_DRAFT_BYTES",
    "ROOTS",
    "build_bundle",
    "bundle_files",
    "check_layout",
    "count_tests",
    "files_digest",
    "files_from_archive",
    "files_from_mapping",
    "read_policy_dir",
    "snapshot",
    "targz",
    "write_policy_dir",
]
