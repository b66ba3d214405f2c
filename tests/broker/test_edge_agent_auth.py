"""The edge agent against a broker with generated credentials: password from a file, TLS with the
development CA, and a publish the ACL refuses (0x87) reported, kept and delivered once the ACL is fixed."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.mosquitto import BrokerAuth, BrokerTls, MosquittoServer
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.errors import PublishError
from edge_agent.mqtt import probe_broker
from tests.broker.support import DEV_CA, Credentials, connect, demo_registry, spec, wait_until
from tests.edge_agent.edge_support import agent_config_dict
from wire import decode_batch

pytestmark = pytest.mark.integration

GATEWAY = "test-gw-01"  # agent_config_dict's gateway at de-munich, with devices cnc-01 and press-01
ONLY_CNC = {GATEWAY: {"site": "de-munich", "devices": ["de-munich-cnc-01"]}}
WHOLE_SITE = {GATEWAY: {"site": "de-munich"}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki") / "ca"
    subprocess.run([str(DEV_CA), "--out", str(out)], check=True, capture_output=True)
    return out


def _start(creds: Credentials, pki: Path) -> MosquittoServer:
    return MosquittoServer(
        auth=BrokerAuth(creds.dynsec_file),
        tls=BrokerTls(pki / "ca.crt", pki / "server.crt", pki / "server.key"),
    ).start()


@pytest.fixture
def servers() -> Iterator[list[MosquittoServer]]:
    started: list[MosquittoServer] = []
    yield started
    for s in started:
        s.cleanup()


def _config(tmp_path: Path, broker: MosquittoServer, creds: Credentials, pki: Path) -> AgentConfig:
    assert broker.tls_port is not None
    broker_cfg = {
        "host": "localhost",  # the name in the development server certificate
        "port": broker.tls_port,
        "keepalive_s": 10,
        "username": GATEWAY,
        "password_file": str(creds.secret_file(GATEWAY)),
        "tls": {"enabled": True, "ca_file": str(pki / "ca.crt")},
        "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.5},
    }
    return AgentConfig.model_validate(agent_config_dict(tmp_path, broker.tls_port, broker=broker_cfg))


def test_agent_logs_in_with_its_password_file_over_tls(
    tmp_path: Path, pki: Path, servers: list[MosquittoServer]
) -> None:
    creds = Credentials(tmp_path / "credentials")
    creds.generate(demo_registry(), spec(WHOLE_SITE))
    broker = _start(creds, pki)
    servers.append(broker)
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    try:
        ingest.subscribe("$share/ingest/tele/v1/+/+")
        stats = Agent(_config(tmp_path, broker, creds, pki)).run(max_batches_per_device=2, ack_timeout_s=20)
        assert all(s.batches_acked == 2 and s.batches_unauthorized == 0 for s in stats.values())
        got = ingest.wait_messages(4)
        assert sorted((decode_batch(p).device_id, decode_batch(p).seq) for _t, p in got) == [
            ("de-munich-cnc-01", 1),
            ("de-munich-cnc-01", 2),
            ("de-munich-press-01", 1),
            ("de-munich-press-01", 2),
        ]
    finally:
        ingest.close()


def test_refused_publishes_are_reported_kept_and_flow_after_the_acl_fix(
    tmp_path: Path, pki: Path, servers: list[MosquittoServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The ACL lets the gateway publish for cnc-01 only: press-01's batches get PUBACK 0x87; the agent
    logs an error naming the topic and the reason, counts them (batches_unauthorized), keeps them and
    retries with backoff; once the ACL serves the whole site (regenerate + broker restart) they are delivered,
    in order, and nothing is counted as rejected or dropped."""
    creds = Credentials(tmp_path / "credentials")
    creds.generate(demo_registry(), spec(ONLY_CNC))
    broker = _start(creds, pki)
    servers.append(broker)
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    ingest.subscribe("$share/ingest/tele/v1/+/+")
    agent = Agent(_config(tmp_path, broker, creds, pki))
    result: list[object] = []
    caplog.set_level(logging.ERROR, logger="edge_agent.publisher")
    runner = threading.Thread(target=lambda: result.append(agent.run(max_batches_per_device=3, ack_timeout_s=40)))
    runner.start()
    try:
        assert wait_until(lambda: agent.stats()["de-munich-press-01"].batches_unauthorized >= 2, timeout_s=15)
        stats = agent.stats()
        assert stats["de-munich-press-01"].batches_acked == 0
        assert stats["de-munich-press-01"].batches_rejected == 0  # kept, not dropped
        refusals = [r for r in caplog.records if "tele/v1/de-munich/de-munich-press-01" in r.getMessage()]
        assert refusals and "Not authorized" in refusals[0].getMessage() and GATEWAY in refusals[0].getMessage()
        assert getattr(refusals[0], "reason_code", None) == 0x87

        creds.generate(demo_registry(), spec(WHOLE_SITE))  # the fix: the gateway serves its whole site
        broker.reload_auth()
        runner.join(40)
        assert not runner.is_alive()
        final = result[0]
        assert isinstance(final, dict)
        assert final["de-munich-press-01"].batches_acked == 3
        assert final["de-munich-cnc-01"].batches_acked == 3
        got = ingest.wait_messages(6, timeout_s=10)
        press = [decode_batch(p).seq for t, p in got if t.endswith("press-01")]
        assert press == [1, 2, 3]
    finally:
        ingest.close()
        if runner.is_alive():
            runner.join(45)


@pytest.mark.parametrize("login", ["wrong password", "no user name"])
def test_a_refused_login_names_the_identity_and_its_config_field_and_backs_off(
    tmp_path: Path, pki: Path, servers: list[MosquittoServer], caplog: pytest.LogCaptureFixture, login: str
) -> None:
    """Mosquitto answers "Not authorized" to both; the agent says which identity was refused and which setting
    sets it, and waits seconds (not the configured 0.1-0.5 s) before trying again."""
    creds = Credentials(tmp_path / "credentials")
    creds.generate(demo_registry(), spec(WHOLE_SITE))
    broker = _start(creds, pki)
    servers.append(broker)
    data = _config(tmp_path, broker, creds, pki).model_dump(mode="json")
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    data["broker"].update(password_file=str(wrong)) if login == "wrong password" else data["broker"].update(
        username=None, password_file=None
    )
    config = AgentConfig.model_validate(data)
    if login == "wrong password":
        expected = [f"refused user name '{GATEWAY}' (broker.username)", f"broker.password_file ({wrong})"]
    else:
        expected = ["refused an anonymous login (no broker.username set)", "set broker.username"]

    with pytest.raises(PublishError) as probe:  # what `edge-agent check` prints on its broker line
        probe_broker(config.broker, client_id=GATEWAY)
    assert all(text in str(probe.value) for text in expected), str(probe.value)
    assert "Not authorized (0x87)" in str(probe.value)

    caplog.set_level(logging.WARNING, logger="edge_agent.publisher")
    agent = Agent(config)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    runner.start()
    try:
        assert wait_until(lambda: any("refused" in r.getMessage() for r in caplog.records), timeout_s=15)
        refusal = next(r for r in caplog.records if "refused" in r.getMessage())
        assert refusal.levelno == logging.ERROR
        assert all(text in refusal.getMessage() for text in expected), refusal.getMessage()
        assert getattr(refusal, "retry_in_s", 0) >= 2.5  # not the 0.1-0.5 s of broker.reconnect
        assert all(text in (agent.last_error or "") for text in expected)
    finally:
        stop.set()
        runner.join(30)
