"""Mutual TLS against a real Mosquitto with ``require_certificate true``: the broker certificate is
verified against the configured CA, and the gateway authenticates with its client certificate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, BrokerSettings
from edge_agent.errors import PublishError
from edge_agent.mqtt import probe_broker

from .edge_support import Mosquitto, make_client_cert, make_tls_material

pytestmark = pytest.mark.integration


@pytest.fixture
def mtls(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, Path]]]:
    workdir = tmp_path / "mtls"
    workdir.mkdir()
    pki = make_tls_material(workdir)
    pki["client"], pki["client_key"] = make_client_cert(workdir, pki["ca"], pki["ca_key"], "test-gw-01")
    other = tmp_path / "other-ca"
    other.mkdir()
    foreign = make_tls_material(other)  # a CA the broker does not trust
    pki["foreign_ca"] = foreign["ca"]
    pki["foreign"], pki["foreign_key"] = make_client_cert(other, foreign["ca"], foreign["ca_key"], "intruder")
    broker = Mosquitto(
        workdir,
        anonymous=False,
        listener_options=(
            f"cafile {pki['ca']}",
            f"certfile {pki['server']}",
            f"keyfile {pki['server_key']}",
            "require_certificate true",
            "use_identity_as_username true",
        ),
    )
    broker.start()
    yield broker, pki
    broker.stop()


def tls(port: int, ca: Path, cert: Path | None = None, key: Path | None = None) -> BrokerSettings:
    files = {"cert_file": str(cert), "key_file": str(key)} if cert and key else {}
    return BrokerSettings.model_validate(
        {"port": port, "connect_timeout_s": 2, "tls": {"enabled": True, "ca_file": str(ca), **files}}
    )


def test_client_certificate_authentication(
    mtls: tuple[Mosquitto, dict[str, Path]], make_config: Callable[..., AgentConfig]
) -> None:
    broker, pki = mtls
    settings = tls(broker.port, pki["ca"], pki["client"], pki["client_key"])
    assert "with TLS" in probe_broker(settings, "probe-mtls")
    broker_settings = settings.model_dump(mode="json") | {"password": None, "retry_unrouted": False}  # no subscriber
    cfg = make_config(broker.port, broker=broker_settings)
    stats = Agent(cfg).run(max_batches_per_device=2, ack_timeout_s=10)
    assert all(s.batches_acked == 2 for s in stats.values())


def test_no_or_untrusted_client_certificate_is_refused(mtls: tuple[Mosquitto, dict[str, Path]]) -> None:
    broker, pki = mtls
    refused = r"cannot connect|no MQTT CONNACK|refused"  # TLS 1.3: the broker drops us after the handshake
    with pytest.raises(PublishError, match=refused) as info:
        probe_broker(tls(broker.port, pki["ca"]), "probe-no-cert")
    assert "connected" not in str(info.value)
    with pytest.raises(PublishError, match=refused):
        probe_broker(tls(broker.port, pki["ca"], pki["foreign"], pki["foreign_key"]), "probe-foreign")


def test_the_broker_certificate_is_verified(mtls: tuple[Mosquitto, dict[str, Path]]) -> None:
    broker, pki = mtls
    with pytest.raises(PublishError, match="certificate verify failed"):
        probe_broker(tls(broker.port, pki["foreign_ca"], pki["client"], pki["client_key"]), "probe-wrong-ca")
