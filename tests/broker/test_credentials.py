"""broker.credentials and `python -m broker credentials`: files, idempotence, rotation, removal, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.credentials import generate
from broker.errors import BrokerConfigError
from broker.identities import IdentitiesSpec, plan
from broker.password_hash import PasswordHash, verify_password
from ingest.registry import Registry
from tests.broker.support import REPO, Credentials, demo_registry, spec

MUNICH = {"gw-munich": {"site": "de-munich"}}


def _config(creds: Credentials) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(creds.dynsec_file.read_text())
    return config


def _passwd(creds: Credentials) -> dict[str, PasswordHash]:
    return {c["username"]: PasswordHash(c["password"], c["salt"], c["iterations"]) for c in _config(creds)["clients"]}


def _acls(creds: Credentials, user: str) -> list[tuple[str, str]]:
    """(acltype, topic) of every ACL of the user's roles (all ACLs are allow: the default denies)."""
    config = _config(creds)
    client = next(c for c in config["clients"] if c["username"] == user)
    names = {r["rolename"] for r in client["roles"]}
    acls = [a for r in config["roles"] if r["rolename"] in names for a in r["acls"]]
    assert all(a["allow"] for a in acls)
    return [(a["acltype"], a["topic"]) for a in acls]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_hashes_and_modes(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "out")
    report = creds.generate(demo_registry(), spec(MUNICH))
    names = {i.name for i in report.identities}
    assert "gw-munich" in names and "ingest-1" in names and "fr-lyon-cnc-01" in names  # direct devices
    assert sorted(report.added) == sorted(names) and not report.kept
    hashes = _passwd(creds)
    assert set(hashes) == names
    for name in names:
        assert verify_password(creds.secret(name), hashes[name])
        assert _mode(creds.secret_file(name)) == 0o600
        assert _mode(creds.secret_file(name).parent) == 0o700
    assert _mode(creds.dynsec_file) == 0o600
    config = _config(creds)
    assert config["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": False,
    }
    assert not config["groups"] and "anonymousGroup" not in config
    munich = _acls(creds, "gw-munich")
    assert ("publishClientSend", "tele/v1/de-munich/de-munich-cnc-01") in munich
    assert ("publishClientSend", "status/v1/de-munich/gw-munich") in munich
    assert {t for t, _ in munich} == {"publishClientSend"}  # writes only: no subscribe, no delivery
    spb = [
        f"$share/ingest/spBv1.0/+/{kind}"
        for kind in ("NBIRTH/+", "NDATA/+", "NDEATH/+", "DBIRTH/+/+", "DDATA/+/+", "DDEATH/+/+")
    ]
    assert sorted(_acls(creds, "ingest-1")) == sorted(
        [
            ("subscribeLiteral", "$share/ingest/tele/v1/+/+"),
            ("subscribeLiteral", "status/v1/+/+"),
            ("unsubscribeLiteral", "$share/ingest/tele/v1/+/+"),
            ("unsubscribeLiteral", "status/v1/+/+"),
            ("publishClientReceive", "tele/v1/#"),
            ("publishClientReceive", "status/v1/#"),
            *[("subscribeLiteral", f) for f in spb],
            *[("unsubscribeLiteral", f) for f in spb],
            ("publishClientReceive", "spBv1.0/#"),
            ("publishClientSend", "spBv1.0/+/NCMD/+"),  # Sparkplug Rebirth
        ]
    )
    for name in names - {"ingest-1"}:  # nobody but the ingest subscribes or reads
        assert {t for t, _ in _acls(creds, name)} == {"publishClientSend"}
    assert "$CONTROL" not in creds.dynsec_file.read_text()  # no admin role: the plugin's API is unusable


def test_share_group_comes_from_the_identities_file(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "out")
    creds.generate(demo_registry(), IdentitiesSpec.model_validate({"gateways": MUNICH, "share_group": "replicas"}))
    assert ("subscribeLiteral", "$share/replicas/tele/v1/+/+") in _acls(creds, "ingest-1")
    assert ("subscribeLiteral", "$share/ingest/tele/v1/+/+") not in _acls(creds, "ingest-1")


def test_files_of_the_password_file_era_are_removed(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "out")
    (creds.out / "broker").mkdir(parents=True)
    for name in ("passwd", "acl"):
        (creds.out / "broker" / name).write_text("old\n")
    creds.generate(demo_registry(), spec(MUNICH))
    assert sorted(p.name for p in (creds.out / "broker").iterdir()) == ["dynamic-security.json"]


def test_regenerating_keeps_secrets_and_files_byte_for_byte(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "out")
    creds.generate(demo_registry(), spec(MUNICH))
    before = {p: p.read_bytes() for p in creds.out.rglob("*") if p.is_file()}
    report = creds.generate(demo_registry(), spec(MUNICH))
    assert not report.added and not report.rotated and not report.removed
    assert {p: p.read_bytes() for p in creds.out.rglob("*") if p.is_file()} == before


def test_rotate_changes_exactly_one_secret(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "out")
    creds.generate(demo_registry(), spec(MUNICH))
    secrets = {n: creds.secret(n) for n in _passwd(creds)}
    report = creds.generate(demo_registry(), spec(MUNICH), rotate=["gw-munich"])
    assert report.rotated == ["gw-munich"]
    after = {n: creds.secret(n) for n in _passwd(creds)}
    assert after["gw-munich"] != secrets["gw-munich"]
    unchanged = {n for n in after if n != "gw-munich"}
    assert {n: after[n] for n in unchanged} == {n: secrets[n] for n in unchanged}
    assert verify_password(after["gw-munich"], _passwd(creds)["gw-munich"])
    assert not verify_password(secrets["gw-munich"], _passwd(creds)["gw-munich"])


def test_decommissioned_devices_and_removed_gateways_disappear(tmp_path: Path) -> None:
    registry = demo_registry()
    creds = Credentials(tmp_path / "out")
    creds.generate(registry, spec({**MUNICH, "gw-lyon": {"site": "fr-lyon"}}))
    devices = {k: v for k, v in registry.devices.items() if k != "us-detroit-cnc-01"}
    smaller = Registry.model_validate(
        registry.model_dump() | {"devices": {k: v.model_dump() for k, v in devices.items()}}
    )
    report = creds.generate(smaller, spec(MUNICH))
    assert sorted(report.removed) == ["gw-lyon", "us-detroit-cnc-01"]
    assert not creds.secret_file("gw-lyon").exists() and not creds.secret_file("us-detroit-cnc-01").exists()
    assert "gw-lyon" not in _passwd(creds) and "gateway-gw-lyon" not in creds.dynsec_file.read_text()
    assert "tele/v1/us-detroit/us-detroit-cnc-01" not in creds.dynsec_file.read_text()
    assert "fr-lyon-cnc-01" in _passwd(creds)  # now a direct device


def test_rotating_an_unknown_identity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match="--rotate: 'ghost' is not an identity"):
        Credentials(tmp_path / "out").generate(demo_registry(), spec(MUNICH), rotate=["ghost"])


def test_ca_file_is_copied_next_to_every_secret(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    creds = Credentials(tmp_path / "out")
    creds.generate(demo_registry(), spec(MUNICH), ca_file=ca)
    assert (creds.out / "broker" / "ca.crt").read_text() == ca.read_text()
    assert (creds.secret_file("gw-munich").parent / "ca.crt").read_text() == ca.read_text()
    bad = tmp_path / "bad.crt"
    bad.write_text("hello")
    with pytest.raises(BrokerConfigError, match=r"bad\.crt: not a PEM certificate"):
        creds.generate(demo_registry(), spec(MUNICH), ca_file=bad)


def test_owners_are_applied(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (chown); the project's tests run as root")
    out = tmp_path / "out"
    generate(plan(demo_registry(), spec(MUNICH)), out, owners={"broker": (1883, 1883), "gateway": (10002, 10002)})
    assert (out / "broker" / "dynamic-security.json").stat().st_uid == 1883
    assert (out / "identities" / "gw-munich" / "password").stat().st_uid == 10002
    assert (out / "identities" / "gw-munich").stat().st_uid == 10002
    assert (out / "identities" / "ingest-1" / "password").stat().st_uid == 0


# --- the command ------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "credentials", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_cli_prints_progress_but_never_secrets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _cli("--out", str(out))
    assert first.returncode == 0, first.stderr
    creds = Credentials(out)
    assert "added   gateway de-munich-gw-01: writes tele/v1/de-munich/de-munich-cnc-01" in first.stdout
    assert "9 identities (7 gateways, 2 ingests)" in first.stdout
    for name in _passwd(creds):
        assert creds.secret(name) not in first.stdout + first.stderr
    again = _cli("--out", str(out), "--rotate", "fr-lyon-gw-01", "--quiet")
    assert again.returncode == 0 and again.stdout.strip().endswith("rotated: fr-lyon-gw-01; kept: 8")
    shown = _cli("--out", str(out), "--show-secrets", "-q")
    assert f"ingest-1\t{creds.secret('ingest-1')}" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--registry", "nope.yaml"), "nope.yaml: cannot read registry"),
        (("--rotate", "ghost"), "--rotate: 'ghost' is not an identity"),
        (("--owner", "broker=root"), "--owner: 'broker=root' must be KIND=UID:GID"),
    ],
    ids=["registry", "rotate", "owner"],
)
def test_cli_errors_exit_2_and_name_what_is_wrong(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _cli("--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_cli_bad_identities_file_names_file_and_field(tmp_path: Path) -> None:
    ids = tmp_path / "ids.yaml"
    ids.write_text("gateways:\n  gw: {site: atlantis}\n")
    result = _cli("--out", str(tmp_path / "out"), "--identities", str(ids))
    assert result.returncode == 2
    assert f"{ids}: gateways.gw.site: 'atlantis' is not a registry site" in result.stderr
