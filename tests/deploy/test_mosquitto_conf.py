"""broker/mosquitto.conf (production) and broker/local.conf (local demo), read and run by the real broker.

The production file is started with its listener moved to a free loopback port, its
persistence_location moved to a temporary directory and its /mosquitto/security/ files (TLS and
credentials) replaced by ones that broker/dev-ca.sh and `python -m broker credentials` generate for
the test, exactly as the compose job does; local.conf is started the way the local runner does it
(listener and persistence_location prepended). Then the broker must stay up, accept connections,
announce the configured limits to an MQTT v5 client, refuse oversized messages, and write its
persistence file on shutdown; the production broker must also refuse anonymous clients and enforce
the generated ACL, over TLS.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack.mosquitto import find_dynsec_plugin
from tests.deploy import compose_checks as cc

BROKER_DIR = cc.REPO_ROOT / "broker"
PRODUCTION = BROKER_DIR / "mosquitto.conf"
LOCAL = BROKER_DIR / "local.conf"
MIB = 1024 * 1024
SECURITY_DIR = "/mosquitto/security"  # where compose mounts the broker/ directory of broker-credentials
# The dynamic-security plugin in eclipse-mosquitto:2.0.x (docker/2.0/Dockerfile of eclipse/mosquitto installs
# it there); the Debian package has it under /usr/lib/<triplet>/ (devstack.mosquitto.find_dynsec_plugin).
IMAGE_DYNSEC_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"
GATEWAY, DEVICE, OTHER_DEVICE = "de-munich-gw-01", "de-munich-cnc-01", "fr-lyon-cnc-01"


class MosquittoFailed(RuntimeError):
    """Mosquitto exited or never accepted connections; the message carries its log."""


@dataclass(frozen=True)
class Broker:
    port: int
    data_dir: Path
    log_file: Path
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Security:
    """TLS and credential files for the production config, generated like the compose job does."""

    dir: Path  # replaces /mosquitto/security
    ca_file: Path
    secrets: Path  # identities/ of the credentials output

    def secret(self, identity: str) -> str:
        return (self.secrets / identity / "password").read_text().strip()


def adapt(text: str, port: int, data_dir: Path, security_dir: Path | None = None) -> str:
    """Move the listener to 127.0.0.1:<port> and persistence to <data_dir>; prepend them when absent
    (that is what the local runner does with local.conf); point /mosquitto/security/ at security_dir."""
    if security_dir is not None:
        text = text.replace(SECURITY_DIR + "/", f"{security_dir}/")
    text = text.replace(f"plugin {IMAGE_DYNSEC_PLUGIN}\n", f"plugin {find_dynsec_plugin()}\n")
    lines = text.splitlines()
    listeners = [i for i, line in enumerate(lines) if line.split()[:1] == ["listener"]]
    if len(listeners) > 1:
        raise ValueError("expected at most one listener")
    head = []
    if listeners:
        lines[listeners[0]] = f"listener {port} 127.0.0.1"
    else:
        head.append(f"listener {port} 127.0.0.1")
    locations = [i for i, line in enumerate(lines) if line.split()[:1] == ["persistence_location"]]
    for i in locations:
        lines[i] = f"persistence_location {data_dir}/"
    if not locations:
        head.append(f"persistence_location {data_dir}/")
    return "\n".join([*head, *lines]) + "\n"


def _unprivileged() -> pwd.struct_passwd | None:
    """As root, run the broker as the mosquitto account (as the package does), else as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("mosquitto", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a mosquitto nor a nobody account exists")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the broker's account can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="deploy-mosquitto-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def security(workdir: Path) -> Security:
    """The compose job's steps for one broker: broker/dev-ca.sh, then `python -m broker credentials` with the
    CA (the job's real script, every cell at once, runs in test_cells_brokers.py)."""
    from broker.credentials import generate_for_registry
    from broker.identities import load_identities
    from ingest.registry import load_registry

    tls = workdir / "tls"
    subprocess.run([str(BROKER_DIR / "dev-ca.sh"), "--out", str(tls)], check=True, capture_output=True)
    out = workdir / "credentials"
    generate_for_registry(
        load_registry(cc.REPO_ROOT / "deploy/local/registry.yaml"),
        load_identities(cc.REPO_ROOT / "deploy/local/broker-identities.yaml"),
        out,
        ca_file=tls / "ca.crt",
    )
    broker_dir = out / "broker"
    for name in ("server.crt", "server.key"):
        shutil.copy(tls / name, broker_dir / name)
    account = _unprivileged()
    if account is not None:
        for path in (workdir, out, broker_dir, *broker_dir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    return Security(broker_dir, tls / "ca.crt", out / "identities")


def _conf_for(path: Path, request: pytest.FixtureRequest) -> tuple[str, Security | None]:
    """The config text and, for production, the security files it needs (they live in the workdir)."""
    if path == PRODUCTION:
        return path.read_text(), request.getfixturevalue("security")
    return path.read_text(), None


@contextmanager
def running_mosquitto(
    conf_text: str, workdir: Path, *, stay_up_s: float = 1.0, security: Security | None = None
) -> Iterator[Broker]:
    """Run ``mosquitto -c`` with the adapted config; raise MosquittoFailed with its log if it does not
    accept connections or does not stay up for ``stay_up_s``. Stops it (SIGTERM) on exit."""
    data_dir = workdir / "data"
    data_dir.mkdir()
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(adapt(conf_text, port, data_dir, security.dir if security else None))
    with mosquitto_process(conf, port, workdir, data_dir, stay_up_s=stay_up_s) as broker:
        yield broker


@contextmanager
def mosquitto_process(
    conf: Path, port: int, workdir: Path, data_dir: Path, *, stay_up_s: float = 1.0
) -> Iterator[Broker]:
    """Run ``mosquitto -c conf``, a config that listens on 127.0.0.1:``port`` and persists in ``data_dir``
    (as the broker's account when root: ``workdir``, ``data_dir`` and ``conf`` are handed to it)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise MosquittoFailed("mosquitto binary not found (apt-get install mosquitto)")
    account = _unprivileged()
    log_file = workdir / "mosquitto.log"
    kwargs: dict[str, object] = {}
    if account is not None:
        for path in (workdir, data_dir, conf):
            os.chown(path, account.pw_uid, account.pw_gid)
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(  # type: ignore[call-overload]  # kwargs: user/group/extra_groups or none
            [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, **kwargs
        )
    try:
        if not _wait_for_port(port, proc, timeout=10):
            raise MosquittoFailed(f"not accepting connections (exit {proc.poll()}):\n{log_file.read_text()}")
        time.sleep(stay_up_s)
        if proc.poll() is not None:
            raise MosquittoFailed(f"exited with {proc.returncode} after starting:\n{log_file.read_text()}")
        yield Broker(port, data_dir, log_file, proc)
    finally:
        _stop(proc)


def _conf(path: Path) -> list[tuple[str, list[str]]]:
    return cc.parse_mosquitto_conf(path.read_text(encoding="utf-8"))


def _value(path: Path, directive: str) -> str:
    values = cc.conf_values(_conf(path), directive)
    assert len(values) == 1, f"{path.name}: {directive} set {len(values)} times"
    return values[0]


# --- content -------------------------------------------------------------------------------------


def test_production_conf_settings() -> None:
    assert _value(PRODUCTION, "listener") == "8883"
    assert _value(PRODUCTION, "allow_anonymous") == "false"
    assert _value(PRODUCTION, "use_username_as_clientid") == "true"
    for directive, name in (
        ("plugin_opt_config_file", "dynamic-security.json"),
        ("cafile", "ca.crt"),
        ("certfile", "server.crt"),
        ("keyfile", "server.key"),
    ):
        assert _value(PRODUCTION, directive) == f"{SECURITY_DIR}/{name}"
    assert _value(PRODUCTION, "plugin") == IMAGE_DYNSEC_PLUGIN
    directives = {name for name, _ in _conf(PRODUCTION)}
    assert not directives & {"password_file", "acl_file"}  # one mechanism: the plugin checks SUBSCRIBE too
    assert _value(PRODUCTION, "persistence") == "true"
    assert _value(PRODUCTION, "persistence_location") == "/mosquitto/data/"
    assert int(_value(PRODUCTION, "max_queued_messages")) >= 100_000
    assert 1 <= int(_value(PRODUCTION, "max_inflight_messages")) <= 65535
    assert int(_value(PRODUCTION, "message_size_limit")) == MIB
    assert _value(PRODUCTION, "persistent_client_expiration")[-1] in "hdwmy"


def test_local_conf_leaves_listener_and_location_to_the_runner() -> None:
    directives = {name for name, _ in _conf(LOCAL)}
    assert not directives & {"listener", "port", "bind_address", "persistence_location"}
    assert _value(LOCAL, "allow_anonymous") == "true"
    assert _value(LOCAL, "persistence") == "true"
    assert _value(LOCAL, "persistent_client_expiration") == "1d"
    assert int(_value(LOCAL, "message_size_limit")) == MIB
    assert {"error", "warning", "notice"} <= set(cc.conf_values(_conf(LOCAL), "log_type"))


def test_anonymous_access_is_marked_demo_only() -> None:
    lines = LOCAL.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("allow_anonymous true"))
    comment = " ".join(lines[max(0, index - 4) : index]).lower()
    assert "demo only" in comment
    assert "production" in comment and "credentials and acls" in comment


def test_readme_documents_the_security() -> None:
    text = (BROKER_DIR / "README.md").read_text(encoding="utf-8").lower()
    assert "allow_anonymous true" in text and "demo only" in text
    for needed in ("python -m broker credentials", "dev-ca.sh", "allow_anonymous false", "0x87", "--rotate"):
        assert needed in text, needed


def test_compose_data_volume_is_the_persistence_location(raw_compose: cc.Compose) -> None:
    """Every cell's broker: its own data volume; the cell wrapper as its config, which includes this file."""
    brokers = cc.broker_services(raw_compose)
    assert sorted(brokers) == ["mosquitto-ap", "mosquitto-cn", "mosquitto-global"]
    for name in brokers:
        targets = {m.target: m for m in cc.mounts(raw_compose["services"][name])}
        assert (targets["/mosquitto/data"].kind, targets["/mosquitto/data"].source) == ("volume", f"{name}-data")
        config = targets[cc.MOSQUITTO_CONF_TARGET]
        assert (config.kind, config.source, config.read_only) == ("bind", "./deploy/compose/mosquitto/cell.conf", True)
        production = targets["/mosquitto/config/conf.d/mosquitto.conf"]
        assert (production.kind, production.source, production.read_only) == ("bind", "./broker/mosquitto.conf", True)
        assert cc.mosquitto_conf_of(raw_compose, name, cc.REPO_ROOT) == _conf(PRODUCTION)


@pytest.fixture
def raw_compose() -> cc.Compose:
    return cc.load_raw()


def test_adapt_moves_listener_and_persistence(tmp_path: Path) -> None:
    text = adapt(PRODUCTION.read_text(), 12345, tmp_path)
    conf = cc.parse_mosquitto_conf(text)
    assert cc.conf_values(conf, "listener") == ["12345 127.0.0.1"]
    assert cc.conf_values(conf, "persistence_location") == [f"{tmp_path}/"]
    local = cc.parse_mosquitto_conf(adapt(LOCAL.read_text(), 12345, tmp_path))
    assert local[:2] == [("listener", ["12345", "127.0.0.1"]), ("persistence_location", [f"{tmp_path}/"])]


# --- the real broker -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_mosquitto_runs_with_the_config(path: Path, workdir: Path, request: pytest.FixtureRequest) -> None:
    """Starts, stays up, accepts TCP, stops cleanly and saves its database in persistence_location."""
    text, security = _conf_for(path, request)
    with running_mosquitto(text, workdir, security=security) as broker:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
        assert broker.proc.poll() is None
    assert broker.proc.returncode == 0, broker.log_file.read_text()
    assert (broker.data_dir / "mosquitto.db").is_file(), broker.log_file.read_text()
    # The TCP probes (the readiness check's and this test's) close a TLS listener's connection before any
    # handshake: depending on timing, OpenSSL logs that EOF. Any other error fails the test.
    errors = [
        line
        for line in broker.log_file.read_text().splitlines()
        if "Error" in line and "SSL routines::unexpected eof while reading" not in line
    ]
    assert errors == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("no_such_directive true", 'Unknown configuration variable "no_such_directive"'),
        ("persistent_client_expiration 5x", "Invalid persistent_client_expiration duration"),
    ],
    ids=["unknown-directive", "bad-duration"],
)
def test_a_rejected_config_is_reported(extra: str, reason: str, workdir: Path) -> None:
    """The runner used above fails, with Mosquitto's own message, on a config Mosquitto rejects."""
    with pytest.raises(MosquittoFailed, match=reason), running_mosquitto(LOCAL.read_text() + extra + "\n", workdir):
        pass


class RawMqtt5:
    """A minimal MQTT v5 client on a plain socket: CONNECT, QoS 1 PUBLISH, and the broker's answers.

    paho-mqtt cannot be used for the oversized publish: Mosquitto 2.0.11 answers it with PUBACK reason
    0x95, which is not a valid PUBACK reason code, and paho 2.x treats the packet as malformed and
    reconnects. Reading the bytes ourselves shows what the broker really sends."""

    # property id -> fixed size in bytes; "s" string, "b" binary, "p" string pair, "v" varint
    _SIZES: dict[int, int | str] = {
        **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), 1),
        **dict.fromkeys((0x13, 0x21, 0x22, 0x23), 2),
        **dict.fromkeys((0x02, 0x11, 0x18, 0x27), 4),
        **dict.fromkeys((0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F), "s"),
        **dict.fromkeys((0x09, 0x16), "b"),
        0x26: "p",
        0x0B: "v",
    }

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        expect: int = 0,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if ca_file is not None:  # TLS, verifying the broker's certificate for "localhost"
            sock = ssl.create_default_context(cafile=str(ca_file)).wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        cid = client_id.encode()
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
        body = b"\x00\x04MQTT\x05" + bytes([flags]) + b"\x00\x1e\x00" + len(cid).to_bytes(2, "big") + cid
        for field in (username, password):
            if field is not None:
                body += len(field.encode()).to_bytes(2, "big") + field.encode()
        try:
            self.sock.sendall(b"\x10" + self._varint(len(body)) + body)
            kind, packet = self._read()
            assert kind == 0x20 and packet[1] == expect, f"CONNACK {expect:#x} expected, got {kind:#x} {packet[:2]!r}"
        except BaseException:
            self.sock.close()  # the caller never gets the object: close the socket here
            raise
        self.reason = packet[1]
        self.connack = self._properties(packet[2:])
        self._next_id = 1

    @staticmethod
    def _varint(value: int) -> bytes:
        out = bytearray()
        while True:
            value, digit = divmod(value, 128)
            out.append(digit | (0x80 if value else 0))
            if not value:
                return bytes(out)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _read(self) -> tuple[int, bytes]:
        kind = self._exactly(1)[0] & 0xF0
        length, shift = 0, 0
        while True:
            digit = self._exactly(1)[0]
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                return kind, self._exactly(length)

    def _properties(self, data: bytes) -> dict[int, object]:
        length, i, shift = 0, 0, 0
        while True:
            length += (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        props: dict[int, object] = {}
        end = i + length
        while i < end:
            pid, i = data[i], i + 1
            size = self._SIZES[pid]
            if isinstance(size, int):
                props[pid], i = int.from_bytes(data[i : i + size], "big"), i + size
            elif size == "v":
                value, shift = 0, 0
                while True:
                    value += (data[i] & 0x7F) << shift
                    shift, i = shift + 7, i + 1
                    if not data[i - 1] & 0x80:
                        break
                props[pid] = value
            else:
                for _ in range(2 if size == "p" else 1):
                    n = int.from_bytes(data[i : i + 2], "big")
                    props[pid], i = data[i + 2 : i + 2 + n], i + 2 + n
        return props

    def publish_qos1(self, topic: str, payload: bytes) -> int:
        """Publish and return the PUBACK reason code (0 when the broker sends none)."""
        packet_id, self._next_id = self._next_id, self._next_id + 1
        name = topic.encode()
        body = len(name).to_bytes(2, "big") + name + packet_id.to_bytes(2, "big") + b"\x00" + payload
        self.sock.sendall(b"\x32" + self._varint(len(body)) + body)
        kind, packet = self._read()
        assert kind == 0x40, f"PUBACK expected, got {kind:#x}"
        assert int.from_bytes(packet[:2], "big") == packet_id
        return packet[2] if len(packet) > 2 else 0

    def subscribe_qos1(self, topic_filter: str) -> int:
        """Subscribe and return the SUBACK reason code (1: granted QoS 1, 0x87: not authorized)."""
        packet_id, self._next_id = self._next_id, self._next_id + 1
        name = topic_filter.encode()
        body = packet_id.to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big") + name + b"\x01"
        self.sock.sendall(b"\x82" + self._varint(len(body)) + body)
        kind, packet = self._read()
        assert kind == 0x90, f"SUBACK expected, got {kind:#x}"
        assert int.from_bytes(packet[:2], "big") == packet_id
        return packet[-1]

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        self.sock.close()


def _subscriber(port: int, topic: str, security: Security | None = None) -> tuple[mqtt.Client, list[bytes]]:
    received: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="deploy-test-sub", protocol=mqtt.MQTTv5
    )
    if security is not None:  # the ingest's identity, over TLS
        client.username_pw_set("ingest-1", security.secret("ingest-1"))
        client.tls_set(ca_certs=str(security.ca_file))
    client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    assert subscribed.wait(5), "subscriber got no SUBACK"
    return client, received


@pytest.mark.integration
@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_mqtt_v5_clients_get_the_configured_limits(path: Path, workdir: Path, request: pytest.FixtureRequest) -> None:
    """CONNACK announces max_inflight_messages as Receive Maximum; a payload over message_size_limit
    gets an error PUBACK and is not forwarded, while one of exactly the limit is delivered. In
    production the publisher is a gateway and the subscriber the ingest, over TLS with credentials."""
    conf = _conf(path)
    inflight = int(cc.conf_values(conf, "max_inflight_messages")[-1])
    limit = int(cc.conf_values(conf, "message_size_limit")[-1])
    text, security = _conf_for(path, request)
    topic = f"tele/v1/de-munich/{DEVICE}" if security else "deploy/test"
    login = {"username": GATEWAY, "password": security.secret(GATEWAY), "ca_file": security.ca_file} if security else {}
    with running_mosquitto(text, workdir, stay_up_s=0.2, security=security) as broker:
        subscriber, received = _subscriber(broker.port, "$share/ingest/tele/v1/+/+" if security else topic, security)
        publisher = RawMqtt5(broker.port, "deploy-test-pub", **login)  # type: ignore[arg-type]  # login: username/password or none
        try:
            assert publisher.connack.get(0x21) == inflight  # Receive Maximum
            # mosquitto.conf(5) says 0x83 (implementation specific error); 2.0.11 sends 0x95.
            assert publisher.publish_qos1(topic, b"x" * (limit + 1)) in (0x83, 0x95)
            assert publisher.publish_qos1(topic, b"y" * limit) == 0
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            assert [(len(m), m[:1]) for m in received] == [(limit, b"y")]
            assert broker.proc.poll() is None
        finally:
            publisher.close()
            subscriber.disconnect()
            subscriber.loop_stop()


@pytest.mark.integration
def test_production_broker_refuses_anonymous_and_enforces_the_acl(workdir: Path, security: Security) -> None:
    """The production config with the generated files: no anonymous or wrong-password CONNECT, no
    plain MQTT on the TLS port, a gateway may publish only its own devices' topics (else 0x87) and may
    not subscribe (not even to join the ingest's shared group); the ingest only to its own filters."""
    with running_mosquitto(PRODUCTION.read_text(), workdir, stay_up_s=0.2, security=security) as broker:
        RawMqtt5(broker.port, "anon", ca_file=security.ca_file, expect=0x87).sock.close()  # Not authorized
        wrong = RawMqtt5(
            broker.port, GATEWAY, username=GATEWAY, password="wrong", ca_file=security.ca_file, expect=0x87
        )  # Mosquitto 2.0.11 answers a wrong password with 0x87 Not authorized too (not 0x86)
        wrong.sock.close()
        with pytest.raises((ConnectionError, OSError, AssertionError)):
            RawMqtt5(broker.port, GATEWAY, username=GATEWAY, password=security.secret(GATEWAY))  # no TLS
        gateway = RawMqtt5(
            broker.port, GATEWAY, username=GATEWAY, password=security.secret(GATEWAY), ca_file=security.ca_file
        )
        try:
            assert gateway.publish_qos1(f"tele/v1/de-munich/{DEVICE}", b"{}") == 0x10  # allowed, no subscriber
            assert gateway.publish_qos1(f"tele/v1/fr-lyon/{OTHER_DEVICE}", b"{}") == 0x87  # Not authorized
            assert gateway.publish_qos1(f"status/v1/de-munich/{GATEWAY}", b"{}") == 0x10
            assert gateway.publish_qos1("status/v1/de-munich/another-gw", b"{}") == 0x87
            assert gateway.subscribe_qos1("$share/ingest/tele/v1/+/+") == 0x87
            assert gateway.subscribe_qos1("tele/v1/#") == 0x87
        finally:
            gateway.close()
        ingest = RawMqtt5(
            broker.port,
            "ingest-1",
            username="ingest-1",
            password=security.secret("ingest-1"),
            ca_file=security.ca_file,
        )
        try:
            assert ingest.subscribe_qos1("$share/ingest/tele/v1/+/+") == 0x01
            assert ingest.subscribe_qos1("status/v1/+/+") == 0x01
            assert ingest.subscribe_qos1("$share/other/tele/v1/+/+") == 0x87
        finally:
            ingest.close()
