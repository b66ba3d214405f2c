"""broker/mosquitto.conf (production) and broker/local.conf (local demo), read and run by the real broker.

The production file is started with its listener moved to a free loopback port and its
persistence_location moved to a temporary directory; local.conf is started the way the local runner
does it (listener and persistence_location prepended). Then the broker must stay up, accept
connections, announce the configured limits to an MQTT v5 client, refuse oversized messages, and
write its persistence file on shutdown.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
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

from tests.deploy import compose_checks as cc

BROKER_DIR = cc.REPO_ROOT / "broker"
PRODUCTION = BROKER_DIR / "mosquitto.conf"
LOCAL = BROKER_DIR / "local.conf"
MIB = 1024 * 1024


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


def adapt(text: str, port: int, data_dir: Path) -> str:
    """Move the listener to 127.0.0.1:<port> and persistence to <data_dir>; prepend them when absent
    (that is what the local runner does with local.conf)."""
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


@contextmanager
def running_mosquitto(conf_text: str, workdir: Path, *, stay_up_s: float = 1.0) -> Iterator[Broker]:
    """Run ``mosquitto -c`` with the adapted config; raise MosquittoFailed with its log if it does not
    accept connections or does not stay up for ``stay_up_s``. Stops it (SIGTERM) on exit."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise MosquittoFailed("mosquitto binary not found (apt-get install mosquitto)")
    account = _unprivileged()
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_file = workdir / "mosquitto.log"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(adapt(conf_text, port, data_dir))
    kwargs: dict[str, object] = {}
    if account is not None:
        for path in (workdir, data_dir, conf):
            os.chown(path, account.pw_uid, account.pw_gid)
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(  # type: ignore[call-overload]
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
    assert _value(PRODUCTION, "listener") == "1883"
    assert _value(PRODUCTION, "persistence") == "true"
    assert _value(PRODUCTION, "persistence_location") == "/mosquitto/data/"
    assert int(_value(PRODUCTION, "max_queued_messages")) >= 100_000
    assert 1 <= int(_value(PRODUCTION, "max_inflight_messages")) <= 65535
    assert int(_value(PRODUCTION, "message_size_limit")) == MIB
    assert _value(PRODUCTION, "persistent_client_expiration")[-1] in "hdwmy"
    assert _value(PRODUCTION, "allow_anonymous") == "true"


def test_local_conf_leaves_listener_and_location_to_the_runner() -> None:
    directives = {name for name, _ in _conf(LOCAL)}
    assert not directives & {"listener", "port", "bind_address", "persistence_location"}
    assert _value(LOCAL, "allow_anonymous") == "true"
    assert _value(LOCAL, "persistence") == "true"
    assert _value(LOCAL, "persistent_client_expiration") == "1d"
    assert int(_value(LOCAL, "message_size_limit")) == MIB
    assert {"error", "warning", "notice"} <= set(cc.conf_values(_conf(LOCAL), "log_type"))


@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_anonymous_access_is_marked_demo_only(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("allow_anonymous true"))
    comment = " ".join(lines[max(0, index - 4) : index]).lower()
    assert "demo only" in comment
    assert "later issue adds per-device credentials and acls" in comment


def test_readme_documents_the_demo_only_access() -> None:
    text = (BROKER_DIR / "README.md").read_text(encoding="utf-8").lower()
    assert "allow_anonymous true" in text
    assert "demo only" in text
    assert "per-device credentials and acls" in text


def test_compose_data_volume_is_the_persistence_location(raw_compose: cc.Compose) -> None:
    mosquitto = raw_compose["services"]["mosquitto"]
    targets = {m.target: m for m in cc.mounts(mosquitto)}
    assert targets["/mosquitto/data"].kind == "volume"
    config = targets[cc.MOSQUITTO_CONF_TARGET]
    assert (config.kind, config.source, config.read_only) == ("bind", "./broker/mosquitto.conf", True)


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
def test_mosquitto_runs_with_the_config(path: Path, workdir: Path) -> None:
    """Starts, stays up, accepts TCP, stops cleanly and saves its database in persistence_location."""
    with running_mosquitto(path.read_text(), workdir) as broker:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
        assert broker.proc.poll() is None
    assert broker.proc.returncode == 0, broker.log_file.read_text()
    assert (broker.data_dir / "mosquitto.db").is_file(), broker.log_file.read_text()
    assert "Error" not in broker.log_file.read_text()


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

    _SIZES = {  # property id -> fixed size in bytes; "s" string, "b" binary, "p" string pair, "v" varint
        **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), 1),
        **dict.fromkeys((0x13, 0x21, 0x22, 0x23), 2),
        **dict.fromkeys((0x02, 0x11, 0x18, 0x27), 4),
        **dict.fromkeys((0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F), "s"),
        **dict.fromkeys((0x09, 0x16), "b"),
        0x26: "p",
        0x0B: "v",
    }

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        cid = client_id.encode()
        body = b"\x00\x04MQTT\x05\x02\x00\x1e\x00" + len(cid).to_bytes(2, "big") + cid
        self.sock.sendall(b"\x10" + self._varint(len(body)) + body)
        kind, packet = self._read()
        assert kind == 0x20 and packet[1] == 0, f"CONNACK expected, got {kind:#x} {packet[:2]!r}"
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
        props, end = {}, i + length
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

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        self.sock.close()


def _subscriber(port: int, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    received: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="deploy-test-sub", protocol=mqtt.MQTTv5
    )
    client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    assert subscribed.wait(5), "subscriber got no SUBACK"
    return client, received


@pytest.mark.integration
@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_mqtt_v5_clients_get_the_configured_limits(path: Path, workdir: Path) -> None:
    """CONNACK announces max_inflight_messages as Receive Maximum; a payload over message_size_limit
    gets an error PUBACK and is not forwarded, while one of exactly the limit is delivered."""
    conf = _conf(path)
    inflight = int(cc.conf_values(conf, "max_inflight_messages")[-1])
    limit = int(cc.conf_values(conf, "message_size_limit")[-1])
    with running_mosquitto(path.read_text(), workdir, stay_up_s=0.2) as broker:
        subscriber, received = _subscriber(broker.port, "deploy/test")
        publisher = RawMqtt5(broker.port, "deploy-test-pub")
        try:
            assert publisher.connack.get(0x21) == inflight  # Receive Maximum
            # mosquitto.conf(5) says 0x83 (implementation specific error); 2.0.11 sends 0x95.
            assert publisher.publish_qos1("deploy/test", b"x" * (limit + 1)) in (0x83, 0x95)
            assert publisher.publish_qos1("deploy/test", b"y" * limit) == 0
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
