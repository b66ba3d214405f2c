"""broker.password_hash: the dynamic-security plugin's PBKDF2-SHA512 fields, checked against mosquitto_ctrl."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from broker.password_hash import PasswordHash, hash_password, verify_password


def test_hash_verifies_and_is_salted() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second  # random salt
    assert first.iterations == 101
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("s3cret!", first)


def test_fixed_salt_is_deterministic() -> None:
    salt = bytes(range(12))
    assert hash_password("x", salt=salt, iterations=5) == hash_password("x", salt=salt, iterations=5)
    assert hash_password("x", salt=salt, iterations=5) != hash_password("x", salt=salt, iterations=6)


@pytest.mark.parametrize(
    "stored",
    [
        PasswordHash("", "", 101),
        PasswordHash("!!", "AAAA", 101),
        PasswordHash("AAAA", "AAAA", 0),
        PasswordHash("AAAA", "not base64", 101),
    ],
    ids=["empty", "bad-digest", "zero-iterations", "bad-salt"],
)
def test_malformed_fields_never_verify(stored: PasswordHash) -> None:
    assert not verify_password("anything", stored)


def test_mosquitto_ctrl_hashes_verify_here(tmp_path: Path) -> None:
    """The format is the plugin's: a client written by `mosquitto_ctrl dynsec init` verifies with our code."""
    tool = shutil.which("mosquitto_ctrl") or "/usr/bin/mosquitto_ctrl"
    assert Path(tool).exists(), "mosquitto_ctrl not found (apt-get install mosquitto-clients)"
    config = tmp_path / "dynsec.json"
    subprocess.run(
        [tool, "dynsec", "init", str(config), "admin"],
        input="the-secret\nthe-secret\n",
        check=True,
        capture_output=True,
        text=True,
    )
    client = json.loads(config.read_text())["clients"][0]
    stored = PasswordHash(client["password"], client["salt"], client["iterations"])
    assert verify_password("the-secret", stored)
    assert not verify_password("the-secreT", stored)
