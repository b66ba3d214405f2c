"""`python -m broker credentials --control-dsn`: the effective registry (YAML + devices registered through
the API, in a real PostgreSQL control database) decides the identities, and the real broker lets a device
added through the overlay publish after the regeneration and a broker restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.errors import BrokerConfigError
from broker.registry_source import load_effective_registry
from devstack import PostgresServer
from devstack.mosquitto import BrokerAuth, MosquittoServer
from ingest.store import registry_store
from tests.broker.support import DEMO_REGISTRY, REPO, Credentials, connect

pytestmark = pytest.mark.integration

BERLIN = {"country": "DE", "home_region": "eu-central", "name": "Berlin plant"}
IDENTITIES = REPO / "deploy" / "local" / "broker-identities.yaml"


def _register(dsn: str, kind: str, entry_id: str, spec: dict[str, Any] | None) -> None:
    """What the API's POST /sites and /devices store (ingest.registry_changes writes the same rows)."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        registry_store.lock_revision(conn)
        registry_store.write_entry(conn, kind=kind, entry_id=entry_id, spec=spec, actor="test")  # type: ignore[arg-type]  # kind: a str literal of the API's kinds


def _cli(out: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "credentials", "--out", str(out), "--identities", str(IDENTITIES), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_effective_registry_overlays_the_api_entries(control: str) -> None:
    assert load_effective_registry(DEMO_REGISTRY).revision is None
    _register(control, "device", "de-munich-cnc-09", {"site": "de-munich", "profile": "cnc_mill"})
    _register(control, "device", "fr-lyon-comp-01", None)  # decommissioned through the API
    loaded = load_effective_registry(DEMO_REGISTRY, control)
    assert loaded.revision == 2
    assert "de-munich-cnc-09" in loaded.registry.devices and "fr-lyon-comp-01" not in loaded.registry.devices
    assert "postgresql" not in loaded.description  # never the DSN (it may carry a password)


def test_an_unreachable_control_database_is_a_clear_error(pg_server: PostgresServer) -> None:
    with pytest.raises(BrokerConfigError, match="--control-dsn: cannot read the registry entries"):
        load_effective_registry(DEMO_REGISTRY, pg_server.dsn("no_such_database"))


def test_a_device_registered_through_the_api_gets_credentials_and_may_publish(control: str, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    first = _cli(out, "--control-dsn", control)
    assert first.returncode == 0, first.stderr
    assert "revision 0" in first.stdout
    creds = Credentials(out)
    broker = MosquittoServer(auth=BrokerAuth(creds.dynsec_file)).start()
    try:
        # an operator registers a new site with a device (no gateway there: the device connects itself)
        # and a new device at Munich (served by Munich's site-wide gateway)
        _register(control, "site", "de-berlin", BERLIN)
        _register(control, "device", "de-berlin-cnc-01", {"site": "de-berlin", "profile": "cnc_mill"})
        _register(control, "device", "de-munich-cnc-09", {"site": "de-munich", "profile": "cnc_mill"})
        gateway = connect(broker.port, "de-munich-gw-01", creds.secret("de-munich-gw-01"))
        try:
            assert gateway.publish("tele/v1/de-munich/de-munich-cnc-09", b"x").value == 0x87  # not yet
        finally:
            gateway.close()

        again = _cli(out, env={"BROKER_CONTROL_DSN": control, "PATH": "/usr/bin:/bin"})  # the env variable
        assert again.returncode == 0, again.stderr
        assert "added   device  de-berlin-cnc-01: writes tele/v1/de-berlin/de-berlin-cnc-01" in again.stdout
        assert "revision 3" in again.stdout and "added: de-berlin-cnc-01; kept: 9" in again.stdout
        broker.reload_auth()  # the documented procedure: regenerate, then restart the broker

        ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
        device = connect(broker.port, "de-berlin-cnc-01", creds.secret("de-berlin-cnc-01"))
        gateway = connect(broker.port, "de-munich-gw-01", creds.secret("de-munich-gw-01"))
        try:
            assert device.connack is not None and not device.connack.is_failure
            ingest.subscribe("$share/ingest/tele/v1/+/+")
            assert device.publish("tele/v1/de-berlin/de-berlin-cnc-01", b"berlin").value == 0
            assert device.publish("tele/v1/de-munich/de-munich-cnc-01", b"spoof").value == 0x87
            assert gateway.publish("tele/v1/de-munich/de-munich-cnc-09", b"munich").value == 0
            assert ingest.wait_messages(2) == [
                ("tele/v1/de-berlin/de-berlin-cnc-01", b"berlin"),
                ("tele/v1/de-munich/de-munich-cnc-09", b"munich"),
            ]
        finally:
            for c in (ingest, device, gateway):
                c.close()
    finally:
        broker.cleanup()


def test_cli_names_the_option_when_the_control_database_is_unreachable(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    result = _cli(tmp_path / "out", "--control-dsn", pg_server.dsn("no_such_database"))
    assert result.returncode == 2
    assert "error: --control-dsn: cannot read the registry entries" in result.stderr
