"""The OPC UA source against a real asyncua server started by the test: subscriptions, value types,
source timestamps, security modes None / Sign / SignAndEncrypt with generated certificates, config
validation of the secure modes, and detection of a lost server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.errors import SourceError
from edge_agent.sources import create_source
from edge_agent.sources.opcua.settings import OpcUaSettings
from edge_agent.sources.opcua.source import OpcUaSource, to_value
from wire import Reading

from .edge_support import free_port
from .servers import OpcUaServer, make_opcua_pki

pytestmark = pytest.mark.integration

CLIENT_URI = "urn:edge-agent-tests:client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_opcua_pki(tmp_path_factory.mktemp("opcua-pki"), CLIENT_URI)


@pytest.fixture(scope="module")
def opcua(pki: dict[str, Path]) -> Iterator[OpcUaServer]:
    server = OpcUaServer(pki["server_cert"].parent).start()
    yield server
    server.close()


def settings(server: OpcUaServer | str, **kw: Any) -> OpcUaSettings:
    endpoint = server if isinstance(server, str) else server.endpoint
    ns = 2 if isinstance(server, str) else server.ns
    nodes = [
        {"node_id": f"ns={ns};s=BarrelTemp", "field": "barrel_temp_c"},
        {"node_id": f"ns={ns};s=Cycles", "field": "cycles"},
        {"node_id": f"ns={ns};s=Running", "field": "running"},
        {"node_id": f"ns={ns};s=Operator", "field": "operator_badge"},
    ]
    data = {
        "type": "opcua",
        "device_id": "press-ua",
        "endpoint": endpoint,
        "publishing_interval_ms": 50,
        "timeout_s": 3,
        "nodes": nodes,
    }
    return OpcUaSettings.model_validate(data | kw)


def collect(source: OpcUaSource, until: Any, timeout_s: float = 10.0) -> list[Reading]:
    """Read until ``until(values)`` holds for the latest value of each field."""
    readings: list[Reading] = []
    latest: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = source.read()
        readings += got
        for r in got:
            latest.update(r.values)
        if until(latest):
            return readings
        time.sleep(0.05)
    pytest.fail(f"timed out; latest values: {latest}")


def test_subscription_delivers_initial_values_and_changes(opcua: OpcUaServer) -> None:
    source = create_source(settings(opcua))
    assert isinstance(source, OpcUaSource)
    source.init()
    source.start()
    try:
        first = collect(source, lambda v: len(v) == 4)
        latest = {k: v for r in first for k, v in r.values.items()}
        assert latest == {"barrel_temp_c": 230.5, "cycles": 7, "running": True, "operator_badge": "B-1001"}
        assert isinstance(latest["cycles"], int) and isinstance(latest["running"], bool)
        before = datetime.now(UTC) - timedelta(seconds=1)
        opcua.write("BarrelTemp", 231.25)
        opcua.write("Cycles", 8)
        changed = collect(source, lambda v: v.get("barrel_temp_c") == 231.25 and v.get("cycles") == 8)
    finally:
        source.stop()
    fresh = [r for r in changed if r.ts >= before]
    assert {k for r in fresh for k in r.values} >= {"barrel_temp_c", "cycles"}
    assert all(r.ts.tzinfo is not None and r.ts <= datetime.now(UTC) for r in changed)  # server source timestamps
    assert [r.ts for r in changed] == sorted(r.ts for r in changed)


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_secure_modes_with_a_client_certificate(opcua: OpcUaServer, pki: dict[str, Path], mode: str) -> None:
    security = {
        "mode": mode,
        "policy": "Basic256Sha256",
        "certificate": str(pki["client_cert"]),
        "private_key": str(pki["client_key"]),
        "application_uri": CLIENT_URI,
    }
    if mode == "SignAndEncrypt":
        security["server_certificate"] = str(pki["server_cert"])  # pinned
    source = OpcUaSource(settings(opcua, security=security))
    source.init()
    source.start()
    try:
        readings = collect(source, lambda v: "operator_badge" in v and "cycles" in v)
    finally:
        source.stop()
    assert any(r.values.get("operator_badge") == "B-1001" for r in readings)


def test_secure_mode_settings_are_validated(tmp_path: Path, pki: dict[str, Path]) -> None:
    endpoint = "opc.tcp://127.0.0.1:4840"
    with pytest.raises(ValidationError, match="mode SignAndEncrypt needs policy, certificate, private_key"):
        settings(endpoint, security={"mode": "SignAndEncrypt"})
    with pytest.raises(ValidationError, match="mode None uses no security: remove policy"):
        settings(endpoint, security={"policy": "Basic256Sha256"})
    with pytest.raises(ValidationError, match="policy"):
        settings(endpoint, security={"mode": "Sign", "policy": "Basic128Rsa15"})
    with pytest.raises(ValidationError, match="file not found"):
        settings(
            endpoint,
            security={
                "mode": "Sign",
                "policy": "Basic256Sha256",
                "certificate": str(tmp_path / "missing.der"),
                "private_key": str(pki["client_key"]),
            },
        )
    with pytest.raises(ValidationError, match="mode"):
        settings(endpoint, security={"mode": "Encrypt"})
    with pytest.raises(ValidationError, match="node_id"):
        settings(endpoint, nodes=[{"node_id": "Press.Temp", "field": "t"}])
    with pytest.raises(ValidationError, match="'t' is used by nodes 0 and 1"):
        settings(endpoint, nodes=[{"node_id": "ns=2;s=A", "field": "t"}, {"node_id": "ns=2;s=B", "field": "t"}])
    with pytest.raises(ValidationError, match="endpoint"):
        settings("http://127.0.0.1:4840")


def test_values_that_cannot_be_sent() -> None:
    assert to_value(float("nan")) is None and to_value([1, 2]) is None and to_value(b"x") is None
    assert to_value(3) == 3 and to_value(True) is True and to_value("x" * 5000) == "x" * 1024


def test_an_unreachable_server_fails_start() -> None:
    source = OpcUaSource(settings(f"opc.tcp://127.0.0.1:{free_port()}", timeout_s=1))
    source.init()
    with pytest.raises(SourceError, match=r"cannot connect to opc\.tcp://127\.0\.0\.1"):
        source.start()


def test_a_lost_server_makes_read_fail(opcua: OpcUaServer) -> None:
    """Runs last in this module: it stops the module's server (starting another costs seconds)."""
    source = OpcUaSource(settings(opcua))
    source.init()
    source.start()
    try:
        collect(source, lambda v: len(v) == 4)
        opcua.stop()
        deadline = time.monotonic() + 15
        with pytest.raises(SourceError, match=r"connection lost|subscription ended"):
            while time.monotonic() < deadline:
                source.read()
                time.sleep(0.1)
    finally:
        source.stop()
