"""Links in the repository's documentation point at files of the repository: a relative Markdown link or a
Rego ``related_resources`` reference must resolve inside the checkout, and no file may point at material that
is not part of it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SKIP = {".git", ".venv", "node_modules", "artifacts", "__pycache__", ".pytest_cache", ".ruff_cache"}
_MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_REGO_REF = re.compile(r"^#\s+-\s+ref:\s+(\S+)", re.MULTILINE)


def _files(*suffixes: str) -> list[Path]:
    return sorted(
        p
        for p in REPO.rglob("*")
        if p.suffix in suffixes and p.is_file() and not _SKIP.intersection(p.relative_to(REPO).parts)
    )


def _outside_or_missing(source: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return None  # a URL or an anchor
    path = (source.parent / target.split("#", 1)[0]).resolve()
    if not path.is_relative_to(REPO):
        return f"{source.relative_to(REPO)}: {target} leaves the repository"
    if not path.exists():
        return f"{source.relative_to(REPO)}: {target} does not exist"
    return None


def test_markdown_links_resolve_inside_the_repository() -> None:
    docs = _files(".md")
    assert len(docs) > 5
    problems = [
        p for doc in docs for target in _MD_LINK.findall(doc.read_text()) if (p := _outside_or_missing(doc, target))
    ]
    assert problems == []


def test_rego_related_resources_resolve_inside_the_repository() -> None:
    policies = _files(".rego")
    assert policies
    problems = [
        p
        for rego in policies
        for target in _REGO_REF.findall(rego.read_text())
        if (p := _outside_or_missing(rego, target))
    ]
    assert problems == []


def test_no_file_points_at_material_outside_the_repository() -> None:
    marker = "shared/" + "brief"  # spelled in two parts so that this file does not match itself
    hits = [
        str(p.relative_to(REPO))
        for p in _files(".md", ".py", ".rego", ".json", ".yaml", ".yml", ".sh", ".toml")
        if marker in p.read_text(errors="replace")
    ]
    assert hits == []
