"""API tokens: format, parsing, hashing and constant-time verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingest.auth import tokens
from ingest.auth.errors import MalformedTokenError, UnknownRoleError
from ingest.auth.roles import Principal, Role, parse_roles


def test_generated_token_parses_back_and_only_its_digest_verifies() -> None:
    issued = tokens.generate()
    assert issued.text.startswith(f"rtk_{issued.token_id}_")
    parsed = tokens.parse(issued.text)
    assert (parsed.token_id, parsed.secret) == (issued.token_id, issued.secret)
    assert issued.digest == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert issued.secret not in issued.digest
    assert tokens.verify(issued.secret, issued.digest)
    assert not tokens.verify(issued.secret + "x", issued.digest)
    assert len(issued.secret) >= 43  # 32 random bytes, URL-safe base64


def test_tokens_are_unique_and_ids_never_hold_the_separator() -> None:
    many = [tokens.generate() for _ in range(300)]
    assert len({t.token_id for t in many}) == 300 and len({t.secret for t in many}) == 300
    assert all("_" not in t.token_id for t in many)
    assert all(tokens.parse(t.text).secret == t.secret for t in many)  # secrets may contain "_"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bearer x",
        "rtk_",
        "rtk_abc_def",
        "xyz_abcdefghijkl_" + "a" * 43,
        "rtk_abcdefgh_" + "a" * 20,
        "rtk_abc$efghij_" + "a" * 43,
    ],
)
def test_malformed_tokens_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(MalformedTokenError) as info:
        tokens.parse(text)
    assert "expected rtk_<token_id>_<secret>" in str(info.value)
    if len(text) > 10:  # a longer presented text (maybe a mistyped secret) is never echoed
        assert text not in str(info.value)


def test_token_file(tmp_path: Path) -> None:
    issued = tokens.generate()
    path = tmp_path / "admin_token"
    path.write_text(f"  {issued.text}\n")
    assert tokens.read_token_file(path) == issued
    path.write_text("not a token")
    with pytest.raises(ValueError, match=f"token file {path}: not an API token"):
        tokens.read_token_file(path)
    with pytest.raises(ValueError, match="cannot read token file"):
        tokens.read_token_file(tmp_path / "missing")


def test_roles_and_scope() -> None:
    assert parse_roles(["Admin", " engineer"]) == {Role.ADMIN, Role.ENGINEER}
    with pytest.raises(UnknownRoleError, match="unknown role\\(s\\) 'root'"):
        parse_roles(["root"])
    with pytest.raises(UnknownRoleError, match="at least one role"):
        parse_roles([])
    scoped = Principal("u", frozenset({Role.ENGINEER}), frozenset({"eu-central"}), "t")
    assert scoped.in_scope("eu-central") and not scoped.in_scope("us-east")
    assert Principal("u", frozenset(), None, None).in_scope("anything")
    assert scoped.scope_text == "eu-central" and Principal("u", frozenset(), frozenset(), None).scope_text == "none"
