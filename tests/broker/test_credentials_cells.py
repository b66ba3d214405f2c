"""``python -m broker credentials --topology``: every cell's credentials in one run, with the options the compose
job needs (docker-compose.yml, service broker-credentials): the files handed to the accounts that read them
(``--owner``), one secret of one cell rotated (``--rotate CELL/NAME``), and the CA path of the bridges as the
broker's container sees it (``--bridge-ca-file``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cells import BRIDGES_FILE
from broker.credentials import read_secret
from tests.broker.support import REPO

TOPOLOGY = REPO / "deploy" / "local" / "cells.yaml"
CA_PEM = "-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "credentials", "--topology", str(TOPOLOGY), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text(CA_PEM)
    return path


def _directives(path: Path, name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in path.read_text().splitlines() if line.split()[:1] == [name]]


def test_bridges_verify_the_peer_with_the_ca_path_the_broker_sees(tmp_path: Path, ca: Path) -> None:
    out = tmp_path / "out"
    done = _cli("--out", str(out), "--ca-file", str(ca), "--bridge-ca-file", "/mosquitto/security/ca.crt", "-q")
    assert done.returncode == 0, done.stderr
    assert _directives(out / "cn" / BRIDGES_FILE, "bridge_cafile") == ["/mosquitto/security/ca.crt"]
    assert _directives(out / "cn" / BRIDGES_FILE, "address") == ["mosquitto-global:8883"]
    assert (out / "cn" / "broker" / "ca.crt").read_text() == CA_PEM  # what the broker mounts at that path
    # without the option, the generated file's own path (as the job sees it)
    plain = tmp_path / "plain"
    assert _cli("--out", str(plain), "--ca-file", str(ca), "-q").returncode == 0
    assert _directives(plain / "ap" / BRIDGES_FILE, "bridge_cafile") == [str(plain / "ap" / "broker" / "ca.crt")]


def test_bridge_ca_file_needs_the_topology(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "credentials",
            "--out",
            str(tmp_path / "o"),
            "--bridge-ca-file",
            "/mosquitto/security/ca.crt",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--bridge-ca-file: only with --topology" in done.stderr


def test_owners_apply_to_every_cell_and_its_bridges(tmp_path: Path, ca: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (chown); the project's tests run as root")
    out = tmp_path / "out"
    done = _cli(
        "--out",
        str(out),
        "--ca-file",
        str(ca),
        "--owner",
        "broker=1883:1883",
        "--owner",
        "ingest=10001:10001",
        "--owner",
        "gateway=10002:10002",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    for cell in ("cn", "ap", "global"):
        broker = out / cell / "broker"
        for name in ("dynamic-security.json", "bridges.conf", "ca.crt"):
            assert (broker / name).stat().st_uid == 1883, (cell, name)
        assert (broker / "bridges.conf").stat().st_mode & 0o777 == 0o600  # it holds the peer accounts' secrets
        assert (out / cell / "identities" / "ingest-1" / "password").stat().st_uid == 10001
    assert (out / "cn" / "identities" / "cn-shenzhen-gw-01" / "password").stat().st_uid == 10002
    assert (out / "global" / "identities" / "cell-cn" / "password").stat().st_uid == 0  # read by the job only


def test_rotate_names_the_cell(tmp_path: Path, ca: Path) -> None:
    out = tmp_path / "out"
    assert _cli("--out", str(out), "--ca-file", str(ca), "-q").returncode == 0
    secret = out / "global" / "identities" / "cell-cn" / "password"
    before = read_secret(secret)
    untouched = {cell: read_secret(out / cell / "identities" / "ingest-1" / "password") for cell in ("cn", "global")}
    done = _cli("--out", str(out), "--ca-file", str(ca), "--rotate", "global/cell-cn", "-q")
    assert done.returncode == 0, done.stderr
    assert "cell global: " in done.stdout and "rotated: cell-cn" in done.stdout
    after = read_secret(secret)
    assert after != before
    assert f"remote_password {after}" in (out / "cn" / BRIDGES_FILE).read_text()  # the cn bridge logs in with it
    assert untouched == {
        cell: read_secret(out / cell / "identities" / "ingest-1" / "password") for cell in ("cn", "global")
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cell-cn", "--rotate: with --topology name the cell too: CELL/NAME"),
        ("mars/ingest-1", "--rotate: 'mars' is not a cell of"),
        ("cn/de-munich-gw-01", "--rotate: 'de-munich-gw-01' is not an identity"),
    ],
    ids=["no-cell", "unknown-cell", "identity-of-another-cell"],
)
def test_rotate_errors_name_what_is_wrong(tmp_path: Path, ca: Path, value: str, message: str) -> None:
    done = _cli("--out", str(tmp_path / "out"), "--ca-file", str(ca), "--rotate", value, "-q")
    assert done.returncode == 2
    assert message in done.stderr
