"""Helpers of the edge-agent tests: a real Mosquitto on a free port, a recording subscriber, configs.

Mosquitto must be installed (``apt-get install mosquitto``; ``MOSQUITTO`` may point elsewhere).
These tests never skip: without a broker they fail and say why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_DEFAULT = "/usr/sbin/mosquitto"


def _mosquitto_binary() -> str:
    candidate = os.environ.get("MOSQUITTO") or MOSQUITTO_DEFAULT
    if Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("mosquitto")
    if found:
        return found
    pytest.fail(
        f"mosquitto not found (looked at {candidate} and on PATH). The edge-agent integration tests need a "
        "real broker: install it with `sudo apt-get install mosquitto` or set MOSQUITTO=/path/to/mosquitto.",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A Mosquitto process on 127.0.0.1:port, configured in its own temp dir."""

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        anonymous: bool = True,
        listener_options: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
    ) -> None:
        self.binary = _mosquitto_binary()
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", *listener_options, f"allow_anonymous {str(anonymous).lower()}"]
        lines += options
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            # As root, mosquitto drops privileges to user "mosquitto" unless told otherwise (mosquitto.conf(5));
            # staying root keeps the temp dir writable for it.
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode}:\n{self.log.read_text()}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"mosquitto did not listen on {self.port} within {timeout_s} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass
class Subscriber:
    """A paho client recording every message on ``topics`` (QoS 1)."""

    port: int
    topics: tuple[str, ...] = ("tele/v1/#", "status/v1/#")
    client_id: str = "test-subscriber"
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]  # paho annotates the delays as int; it takes seconds

    def start(self, timeout_s: float = 5.0) -> Subscriber:
        props = None
        if self.persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
        self.client.connect("127.0.0.1", self.port, 30, clean_start=not self.persistent, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(timeout_s), "test subscriber did not get its SUBACK"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            props = getattr(msg, "properties", None)
            content_type = getattr(props, "ContentType", None)
            user = tuple(getattr(props, "UserProperty", ()) or ())
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), content_type, user))
            self._cond.notify_all()

    def on(self, prefix: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic.startswith(prefix)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self.messages)), timeout_s)


def agent_config_dict(tmp_path: Path, port: int, **overrides: Any) -> dict[str, Any]:
    """A fast config: two simulated devices sampling every 10 ms, batches of 10 readings."""
    cfg: dict[str, Any] = {
        "gateway_id": "test-gw-01",
        "site_id": "de-munich",
        "country": "DE",
        "state_dir": str(tmp_path / "state"),
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive_s": 10,
            "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.5},
            # Most tests run without an ingest: a PUBACK "no matching subscribers" counts as delivered.
            # test_publish_options.py covers the default (retry until someone subscribes).
            "retry_unrouted": False,
        },
        "batch": {"max_readings": 10, "max_latency_ms": 2000},
        "sources": [
            {
                "type": "simulated",
                "device_id": "de-munich-cnc-01",
                "machine": "cnc_mill",
                "interval_ms": 10,
                "seed": 1,
                "operators": ["B-1001", "B-1002"],
                "shift_s": 1.0,
            },
            {
                "type": "simulated",
                "device_id": "de-munich-press-01",
                "machine": "injection_press",
                "interval_ms": 10,
                "seed": 2,
            },
        ],
    }
    cfg.update(overrides)
    return cfg


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if not found:
        pytest.fail(f"{name} not found; the TLS/authentication tests need it", pytrace=False)
    return found


def make_tls_material(directory: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (EC keys, valid one day)."""
    openssl = _tool("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    files = {k: directory / f"{k}.pem" for k in ("ca", "ca_key", "server", "server_key", "csr")}
    san = directory / "san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    commands = [
        [
            openssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            files["ca_key"],
            "-out",
            files["ca"],
            "-days",
            "1",
            "-subj",
            "/CN=edge-agent test CA",
        ],
        [openssl, "req", *ec, "-keyout", files["server_key"], "-out", files["csr"], "-subj", "/CN=127.0.0.1"],
        [
            openssl,
            "x509",
            "-req",
            "-in",
            files["csr"],
            "-CA",
            files["ca"],
            "-CAkey",
            files["ca_key"],
            "-CAcreateserial",
            "-out",
            files["server"],
            "-days",
            "1",
            "-extfile",
            san,
        ],
    ]
    for command in commands:
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"openssl failed: {done.stderr}", pytrace=False)
    return files


def make_password_file(directory: Path, user: str, password: str) -> Path:
    path = directory / "passwd"
    done = subprocess.run(
        [_tool("mosquitto_passwd"), "-b", "-c", str(path), user, password], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"mosquitto_passwd failed: {done.stderr}", pytrace=False)
    return path


def make_client_cert(directory: Path, ca: Path, ca_key: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (CN=name, clientAuth) signed by ``ca``; returns (cert, key)."""
    openssl = _tool("openssl")
    key, csr, cert = directory / f"{name}-key.pem", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.cnf"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
        [
            openssl,
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "1",
            "-extfile",
            ext,
        ],
    ]
    for command in commands:
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"openssl failed: {done.stderr}", pytrace=False)
    return cert, key
