"""A real Mosquitto with the generated dynamic-security file (broker/local.conf + devstack auth/tls).

The same file the compose job generates, loaded by Debian's Mosquitto 2.0.11 and its dynamic-security
plugin: anonymous and wrong passwords are refused, a gateway publishes only its own devices' topics and
subscribes to nothing (so it cannot join the ingest's shared group and make messages vanish), only the
ingest account reads and only through its own group, nobody can use the plugin's $CONTROL API, TLS
works with the development CA and not with another CA, and a rotated secret replaces the old one after
a broker restart (SIGHUP does not reload the plugin's file: shown here).
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.mosquitto import BrokerAuth, BrokerTls, MosquittoServer
from tests.broker.support import DEV_CA, Credentials, connect, demo_registry, spec, wait_until

pytestmark = pytest.mark.integration

GATEWAYS = {"gw-munich": {"site": "de-munich"}, "gw-lyon": {"site": "fr-lyon"}}
MUNICH_CNC = "tele/v1/de-munich/de-munich-cnc-01"
LYON_CNC = "tele/v1/fr-lyon/fr-lyon-cnc-01"
NOT_AUTHORIZED = 0x87
NO_MATCHING_SUBSCRIBERS = 0x10
GRANTED_QOS1 = 0x01


def _ca(out: Path, *extra: str) -> Path:
    subprocess.run([str(DEV_CA), "--out", str(out), *extra], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ca(tmp_path_factory.mktemp("pki") / "ca")


@pytest.fixture
def creds(tmp_path: Path) -> Credentials:
    c = Credentials(tmp_path / "credentials")
    c.generate(demo_registry(), spec(GATEWAYS))
    return c


@pytest.fixture
def broker(creds: Credentials, pki: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(  # in the system temp dir: pytest's tmp_path is private to root
        auth=BrokerAuth(creds.dynsec_file),
        tls=BrokerTls(pki / "ca.crt", pki / "server.crt", pki / "server.key"),
    )
    server.start()
    yield server
    server.cleanup()


def test_anonymous_and_wrong_passwords_are_refused(broker: MosquittoServer, creds: Credentials) -> None:
    anonymous = connect(broker.port)
    assert anonymous.connack is not None and anonymous.connack.value == NOT_AUTHORIZED
    wrong = connect(broker.port, "gw-munich", "not-the-secret")
    assert wrong.connack is not None and wrong.connack.value == NOT_AUTHORIZED  # 2.0.11: 0x87, not 0x86
    other = connect(broker.port, "gw-munich", creds.secret("gw-lyon"))  # another identity's secret
    assert other.connack is not None and other.connack.value == NOT_AUTHORIZED
    good = connect(broker.port, "gw-munich", creds.secret("gw-munich"))
    assert good.connack is not None and not good.connack.is_failure
    good.close()


def test_own_topic_reaches_the_ingest_through_the_shared_subscription(
    broker: MosquittoServer, creds: Credentials
) -> None:
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"), client_id="ingest-1")
    gateway = connect(broker.port, "gw-munich", creds.secret("gw-munich"), client_id="gw-munich")
    try:
        ingest.subscribe("$share/ingest/tele/v1/+/+", "status/v1/+/+")
        assert gateway.publish(MUNICH_CNC, b"batch-1").value == 0
        assert gateway.publish("status/v1/de-munich/gw-munich", b"online").value == 0
        assert ingest.wait_messages(2) == [(MUNICH_CNC, b"batch-1"), ("status/v1/de-munich/gw-munich", b"online")]
    finally:
        gateway.close()
        ingest.close()


def test_publishing_as_another_device_is_refused(broker: MosquittoServer, creds: Credentials) -> None:
    """Munich's gateway publishing under a Lyon device's topic (or another gateway's status) gets
    PUBACK 0x87 Not authorized and the ingest receives nothing."""
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    gateway = connect(broker.port, "gw-munich", creds.secret("gw-munich"))
    try:
        ingest.subscribe("$share/ingest/tele/v1/+/+", "status/v1/+/+")
        assert gateway.publish(LYON_CNC, b"spoofed").value == NOT_AUTHORIZED
        assert gateway.publish("tele/v1/de-munich/de-munich-unknown-01", b"x").value == NOT_AUTHORIZED
        assert gateway.publish("status/v1/fr-lyon/gw-lyon", b"offline").value == NOT_AUTHORIZED
        assert gateway.publish(MUNICH_CNC, b"real").value == 0
        assert ingest.wait_messages(1) == [(MUNICH_CNC, b"real")]
        assert not wait_until(lambda: len(ingest.messages) > 1, timeout_s=0.5)
    finally:
        gateway.close()
        ingest.close()


def test_nobody_but_the_ingest_reads(broker: MosquittoServer, creds: Credentials) -> None:
    """A gateway's subscriptions are refused (SUBACK 0x87) and nothing is delivered to it."""
    spy = connect(broker.port, "gw-lyon", creds.secret("gw-lyon"))
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    gateway = connect(broker.port, "gw-munich", creds.secret("gw-munich"))
    try:
        assert spy.subscribe("tele/v1/#", "tele/v1/de-munich/+", "status/v1/#", "$SYS/#") == [NOT_AUTHORIZED] * 4
        assert ingest.subscribe("$share/ingest/tele/v1/+/+") == [GRANTED_QOS1]
        for i in range(3):
            assert gateway.publish(MUNICH_CNC, f"b{i}".encode()).value == 0
        assert len(ingest.wait_messages(3)) == 3
        assert not wait_until(lambda: bool(spy.messages), timeout_s=1.0), spy.messages
    finally:
        for c in (spy, ingest, gateway):
            c.close()


def test_client_id_is_the_user_name(broker: MosquittoServer, creds: Credentials) -> None:
    """use_username_as_clientid: a gateway cannot take over the ingest's session by its client id."""
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"), client_id="ingest-1")
    intruder = connect(broker.port, "gw-munich", creds.secret("gw-munich"), client_id="ingest-1")
    try:
        assert intruder.connack is not None and not intruder.connack.is_failure
        assert not wait_until(lambda: not ingest.client.is_connected(), timeout_s=1.0)  # not kicked off
    finally:
        intruder.close()
        ingest.close()


def test_tls_with_the_development_ca(broker: MosquittoServer, creds: Credentials, pki: Path, tmp_path: Path) -> None:
    assert broker.tls_port is not None
    secure = connect(broker.tls_port, "gw-munich", creds.secret("gw-munich"), ca_file=pki / "ca.crt")
    try:
        assert secure.connack is not None and not secure.connack.is_failure
        assert secure.publish(MUNICH_CNC, b"over tls").value == NO_MATCHING_SUBSCRIBERS  # allowed; nobody reads
    finally:
        secure.close()
    stranger = _ca(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(broker.tls_port, "gw-munich", creds.secret("gw-munich"), ca_file=stranger / "ca.crt")


def test_rotation_replaces_the_secret_after_a_reload(broker: MosquittoServer, creds: Credentials) -> None:
    old = creds.secret("gw-munich")
    creds.generate(demo_registry(), spec(GATEWAYS), rotate=["gw-munich"])
    new = creds.secret("gw-munich")
    assert new != old
    broker.reload_auth()

    def accepted(secret: str, user: str = "gw-munich") -> bool:
        conn = connect(broker.port, user, secret)
        ok = conn.connack is not None and not conn.connack.is_failure
        conn.close()
        return ok

    assert wait_until(lambda: accepted(new), timeout_s=5)
    assert not accepted(old)
    assert accepted(creds.secret("gw-lyon"), "gw-lyon")  # the others keep theirs


def test_a_gateway_cannot_join_the_ingest_group_and_nothing_is_lost(
    broker: MosquittoServer, creds: Credentials
) -> None:
    """The gap of the ACL file: a gateway subscribing to $share/ingest/... joined the group and its share
    of the messages was dropped. The plugin refuses the SUBSCRIBE, so every message reaches the ingest."""
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    intruder = connect(broker.port, "gw-lyon", creds.secret("gw-lyon"))
    gateway = connect(broker.port, "gw-munich", creds.secret("gw-munich"))
    try:
        assert ingest.subscribe("$share/ingest/tele/v1/+/+") == [GRANTED_QOS1]
        refused = intruder.subscribe(
            "$share/ingest/tele/v1/+/+", "tele/v1/#", "$share/ingest/#", "$share/other/tele/v1/+/+", "#"
        )
        assert refused == [NOT_AUTHORIZED] * 5
        sent = [f"batch-{i}".encode() for i in range(40)]
        assert [gateway.publish(MUNICH_CNC, payload).value for payload in sent] == [0] * len(sent)
        assert [p for _t, p in ingest.wait_messages(len(sent))] == sent  # all of them, in order
        assert not intruder.messages
    finally:
        for c in (intruder, ingest, gateway):
            c.close()


def test_the_ingest_may_subscribe_only_its_own_filters(broker: MosquittoServer, creds: Credentials) -> None:
    """Another share group, a plain data subscription or everything: refused, also for the ingest."""
    ingest = connect(broker.port, "ingest-1", creds.secret("ingest-1"))
    try:
        assert ingest.subscribe("$share/ingest/tele/v1/+/+", "status/v1/+/+") == [GRANTED_QOS1] * 2
        assert (
            ingest.subscribe("$share/other/tele/v1/+/+", "tele/v1/+/+", "tele/v1/#", "#", "$SYS/#")
            == [NOT_AUTHORIZED] * 5
        )
        assert ingest.publish(MUNICH_CNC, b"the ingest writes nothing").value == NOT_AUTHORIZED
    finally:
        ingest.close()


def test_nobody_can_use_the_dynamic_security_admin_api(broker: MosquittoServer, creds: Credentials) -> None:
    """No identity has the plugin's admin role: $CONTROL/dynamic-security/v1 is refused to everyone."""
    command = b'{"commands":[{"command":"createClient","username":"evil","password":"x"}]}'
    for user in ("gw-munich", "ingest-1"):
        conn = connect(broker.port, user, creds.secret(user))
        try:
            assert conn.subscribe("$CONTROL/dynamic-security/#") == [NOT_AUTHORIZED]
            assert conn.publish("$CONTROL/dynamic-security/v1", command).value == NOT_AUTHORIZED
        finally:
            conn.close()
    evil = connect(broker.port, "evil", "x")
    assert evil.connack is not None and evil.connack.value == NOT_AUTHORIZED


def test_sighup_does_not_reload_the_plugin_file_a_restart_does(broker: MosquittoServer, creds: Credentials) -> None:
    """Evidence for the documented procedure: Mosquitto 2.0.11 reads the plugin's file only at start."""
    creds.generate(demo_registry(), spec({**GATEWAYS, "gw-detroit": {"site": "us-detroit"}}))
    broker.reload_auth(restart=False)  # the new file in place, then SIGHUP
    new = creds.secret("gw-detroit")

    def accepted() -> bool:
        conn = connect(broker.port, "gw-detroit", new)
        ok = conn.connack is not None and not conn.connack.is_failure
        conn.close()
        return ok

    assert not wait_until(accepted, timeout_s=2)  # still unknown after the SIGHUP
    broker.reload_auth()
    assert accepted()
