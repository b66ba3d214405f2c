"""The cells' brokers of docker-compose.yml, run for real from what the compose file mounts into them.

1. The broker-credentials job's own script runs (``sh -ec``, as its entrypoint does), its container paths
   mapped through the job's mounts and image to the repository's files and a temporary directory that
   stands for the broker-credentials volume, and the broker's account (uid 1883 in the image) mapped to this
   machine's mosquitto account: broker/dev-ca.sh, then ``python -m broker credentials --topology ...``,
   then the certificate copies.
2. Each cell's broker service is started with Debian's Mosquitto exactly as its mounts assemble it: the
   cell wrapper (deploy/compose/mosquitto/cell.conf) as the main config and its ``include_dir`` directories
   filled from the mounts (broker/mosquitto.conf, and the cell's generated bridges.conf from its directory
   of the volume); only the listener port, the persistence directory, the plugin's path on Debian, the
   /mosquitto/security/ prefix and the peers' addresses (compose service names) are moved to this machine.
3. Then: the bridges come up (their retained state "1") over TLS, verified with the CA path the job wrote,
   logged in with the peer accounts; a part published on the cn and ap brokers reaches the global cell's
   ingest group and a receipt travels back; the cell's gateways log in at their own cell's broker only.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker.cells import BRIDGES_FILE, peer_account
from ingest.cells.envelope import XACK_PREFIX, XFER_PREFIX
from ingest.cells.link import bridge_state_topic
from ingest.cells.topology import Topology, load_topology
from ingest.registry import load_registry
from tests.deploy import compose_checks as cc
from tests.deploy.test_compose import TEST_ENV
from tests.deploy.test_mosquitto_conf import (
    IMAGE_DYNSEC_PLUGIN,
    SECURITY_DIR,
    Broker,
    _unprivileged,
    free_port,
    mosquitto_process,
)

pytestmark = pytest.mark.integration

IMAGE_BROKER_ACCOUNT = "1883:1883"  # the mosquitto user of eclipse-mosquitto, as the job's script names it
NOT_AUTHORIZED = 0x87


@dataclass(frozen=True)
class JobRun:
    """The broker-credentials volume after the job ran, and what the job is."""

    job: cc.CredentialsJob
    volume: Path
    topology: Topology
    stdout: str

    def cell_dir(self, cell: str) -> Path:
        return self.volume / self.job.dir_of(cell)

    def secret(self, cell: str, identity: str) -> str:
        return (self.cell_dir(cell) / "identities" / identity / "password").read_text().strip()


def _account() -> str:
    account = _unprivileged()
    return f"{account.pw_uid}:{account.pw_gid}" if account else f"{os.getuid()}:{os.getgid()}"


def _host_script(compose: cc.Compose, service: str, volume: Path) -> str:
    """The job's script with every container path the job's mounts or image provide replaced by its host
    path (the named volume by ``volume``); paths the job does not have (the bridges' CA as the broker sees
    it) stay. ``python`` is this interpreter; the broker's account is this machine's."""
    svc = compose["services"][service]

    def host(token: str) -> str:
        if not token.startswith("/"):
            return token
        found = cc.mount_of(svc, token)
        if found is not None:
            mount, rel = found
            base = volume / mount.subpath if mount.kind == "volume" else cc.REPO_ROOT / mount.source
            return str(base / rel if rel else base)
        source = cc.container_source(svc, token, cc.REPO_ROOT)
        return str(source) if source is not None else token

    script = cc.service_commands(svc)
    assert script.script and script.stops_on_error
    text = str(svc["command"][0])
    lines = [" ".join(host(token) for token in line.split(" ")) for line in text.splitlines()]
    mapped = "\n".join(lines).replace(IMAGE_BROKER_ACCOUNT, _account())
    return re.sub(r"(?m)^python -m ", shlex.quote(sys.executable) + " -m ", mapped)


def run_job(compose: cc.Compose, volume: Path) -> JobRun:
    (job,) = cc.credentials_jobs(compose, cc.REPO_ROOT)
    assert job.problems == [] and job.topology is not None
    svc = compose["services"][job.service]
    assert cc.service_commands(svc).argvs[0][:1] == ["test"]  # entrypoint ["/bin/sh", "-ec"]: sh -e runs it
    done = subprocess.run(
        ["sh", "-ec", _host_script(compose, job.service, volume)],
        cwd=cc.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BROKER_CREDENTIALS_ARGS": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return JobRun(job, volume, load_topology(job.topology), done.stdout)


@pytest.fixture(scope="module")
def compose() -> cc.Compose:
    return cc.load_compose(TEST_ENV)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A directory the broker's account can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="deploy-cells-"))
    account = _unprivileged()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def job_run(compose: cc.Compose, workdir: Path) -> JobRun:
    volume = workdir / "broker-credentials"
    volume.mkdir()
    return run_job(compose, volume)


# --- what the job leaves -------------------------------------------------------------------------


def test_the_job_writes_every_cells_broker_directory(job_run: JobRun) -> None:
    account = _account()
    for cell in job_run.topology.cells:
        broker = job_run.cell_dir(cell) / "broker"
        for name in ("dynamic-security.json", "bridges.conf", "ca.crt", "server.crt", "server.key"):
            assert (broker / name).is_file(), (cell, name)
        for name in ("dynamic-security.json", "bridges.conf", "server.key"):  # readable by the broker only
            stat = (broker / name).stat()
            assert f"{stat.st_uid}:{stat.st_gid}" == account and stat.st_mode & 0o077 == 0, (cell, name)
        assert (broker / "ca.crt").read_bytes() == (job_run.volume / "tls" / "ca.crt").read_bytes()
    assert "cell cn: " in job_run.stdout and "bridges in" in job_run.stdout


def test_the_certificate_names_every_cells_broker(job_run: JobRun) -> None:
    """The bridges, ingests and gateways verify the broker's name: the compose host of each cell."""
    for cell, spec in job_run.topology.cells.items():
        text = subprocess.run(
            [
                "openssl",
                "x509",
                "-noout",
                "-ext",
                "subjectAltName",
                "-in",
                str(job_run.cell_dir(cell) / "broker" / "server.crt"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"DNS:{spec.broker.host}" in text, text


def test_a_second_run_keeps_every_secret(compose: cc.Compose, job_run: JobRun, workdir: Path) -> None:
    """What operators do after a registry change: the certificate stays (test -f), and so does every secret
    (so the bridges' passwords still match the peers' accounts)."""
    copy = workdir / "second-run"
    shutil.copytree(job_run.volume, copy, symlinks=True)
    again = run_job(compose, copy)
    assert "kept: " in again.stdout and "added: " not in again.stdout
    for cell in job_run.topology.cells:
        for name in ("dynamic-security.json", "bridges.conf", "server.crt"):
            assert (copy / job_run.job.dir_of(cell, "broker", name)).read_bytes() == (
                job_run.cell_dir(cell) / "broker" / name
            ).read_bytes(), (cell, name)


# --- the brokers, as their mounts assemble them ---------------------------------------------------


@dataclass(frozen=True)
class CellBroker:
    cell: str
    service: str
    broker: Broker


def _materialize(
    compose: cc.Compose, service: str, job_run: JobRun, home: Path, port: int, ports: dict[str, int]
) -> tuple[Path, Path]:
    """The broker's config as its mounts assemble it, moved to this machine (see the module docstring).
    Returns (main config, data directory)."""
    svc = compose["services"][service]

    def on_host(mount: cc.Mount) -> Path:
        return job_run.volume / mount.subpath if mount.kind == "volume" else cc.REPO_ROOT / mount.source

    security = cc.mount_of(svc, SECURITY_DIR)
    assert security is not None and security[0].source == job_run.job.volume
    security_dir = on_host(security[0]) / security[1]
    data_dir = home / "data"
    data_dir.mkdir(parents=True)

    def adapt(text: str) -> str:
        text = text.replace(SECURITY_DIR + "/", f"{security_dir}/")
        text = text.replace(f"plugin {IMAGE_DYNSEC_PLUGIN}\n", f"plugin {cc_find_dynsec()}\n")
        text = re.sub(r"(?m)^listener \d+$", f"listener {port} 127.0.0.1", text)
        text = re.sub(r"(?m)^persistence_location .*$", f"persistence_location {data_dir}/", text)
        return re.sub(
            r"(?m)^address ([\w.-]+):(\d+)$",
            lambda m: f"address 127.0.0.1:{ports[m.group(1)]}" if m.group(1) in ports else m.group(0),
            text,
        )

    main = cc.host_path(svc, cc.MOSQUITTO_CONF_TARGET, cc.REPO_ROOT)
    assert main is not None
    lines = []
    for index, line in enumerate(main.read_text().splitlines()):
        if line.split()[:1] != ["include_dir"]:
            lines.append(line)
            continue
        directory = line.split(None, 1)[1]
        files, volume = cc._included_files(svc, directory, cc.REPO_ROOT)
        if volume is not None:
            files = sorted((on_host(volume[0]) / volume[1]).glob("*.conf"))
        assert files, f"{service}: include_dir {directory} holds no *.conf"
        local = home / f"include-{index}"
        local.mkdir()
        for file in files:
            (local / file.name).write_text(adapt(file.read_text()))
        lines.append(f"include_dir {local}")
    conf = home / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    account = _unprivileged()
    if account is not None:
        for path in (home.parent, home, *home.rglob("*")):
            os.chown(path, account.pw_uid, account.pw_gid)
    return conf, data_dir


def cc_find_dynsec() -> Path:
    from devstack.mosquitto import find_dynsec_plugin

    return find_dynsec_plugin()


@pytest.fixture(scope="module")
def brokers(compose: cc.Compose, job_run: JobRun, workdir: Path) -> Iterator[dict[str, CellBroker]]:
    """Every cell's broker running; receivers of bridges first (global), so the bridges connect at once."""
    topology = job_run.topology
    services = {cell: spec.broker.host for cell, spec in topology.cells.items()}
    ports = {host: free_port() for host in services.values()}
    registry = load_registry(cc.REPO_ROOT / "deploy" / "local" / "registry.yaml")
    order = sorted(topology.cells, key=lambda c: len(topology.peers(c, registry)[0]))
    running: dict[str, CellBroker] = {}
    with ExitStack() as stack:
        for cell in order:
            home = workdir / "brokers" / cell
            conf, data_dir = _materialize(compose, services[cell], job_run, home, ports[services[cell]], ports)
            broker = stack.enter_context(mosquitto_process(conf, ports[services[cell]], home, data_dir, stay_up_s=0.3))
            running[cell] = CellBroker(cell, services[cell], broker)
        yield running
        for cell_broker in running.values():
            assert cell_broker.broker.proc.poll() is None, cell_broker.broker.log_file.read_text()


class Client:
    """A paho MQTT v5 client over TLS (the CA the job put next to every identity's secret)."""

    def __init__(self, port: int, identity: str, secret: str, ca_file: Path) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connected = threading.Event()
        self.reason: int | None = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=identity, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(identity, secret)
        self.client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.tls_insecure_set(False)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect("localhost", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), f"{identity}: no CONNACK"

    def _on_connect(
        self, _client: object, _userdata: object, _flags: object, reason: ReasonCode, _props: object
    ) -> None:
        self.reason = reason.value  # callback API 2: always a ReasonCode
        self.connected.set()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        granted: list[int] = []

        def on_subscribe(_c: object, _u: object, _mid: int, codes: list[ReasonCode], _p: object) -> None:
            granted.extend(int(c.value) for c in codes)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert done.wait(10) and granted == [1], (topic, granted)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), topic

    def wait_for(self, topic: str, payload: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(t == topic and p == payload for t, p, _ in self.messages):
                return
            time.sleep(0.05)
        raise AssertionError(f"{topic} {payload!r} not received; got {self.messages}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _login(
    brokers: dict[str, CellBroker], job_run: JobRun, cell: str, identity: str, *, secret_cell: str | None = None
) -> Client:
    home = secret_cell or cell
    ca = job_run.cell_dir(home) / "identities" / identity / "ca.crt"
    return Client(brokers[cell].broker.port, identity, job_run.secret(home, identity), ca)


def test_bridges_connect_and_carry_parts_and_receipts(brokers: dict[str, CellBroker], job_run: JobRun) -> None:
    """cn -> global and ap -> global, with the generated bridges (TLS to the peer, its cell-<name> account):
    a part published on the sender's broker reaches the receiver's ingest group, its receipt comes back."""
    registry = load_registry(cc.REPO_ROOT / "deploy" / "local" / "registry.yaml")
    links = sorted(job_run.topology.links(registry))
    assert links == [("ap", "global"), ("cn", "global")]
    receivers: dict[str, Client] = {}
    try:
        for _, target in links:
            if target not in receivers:
                receivers[target] = _login(brokers, job_run, target, "ingest-1")
                receivers[target].subscribe(f"$share/ingest/{XFER_PREFIX}/{target}/+/+")
        for source, target in links:
            text = (job_run.cell_dir(source) / BRIDGES_FILE).read_text()
            assert (
                f"remote_username {peer_account(source)}" in text and "bridge_cafile /mosquitto/security/ca.crt" in text
            )
            sender = _login(brokers, job_run, source, "ingest-1")
            try:
                sender.subscribe(bridge_state_topic(source, target))
                sender.wait_for(bridge_state_topic(source, target), b"1")  # the bridge's own notification
                sender.subscribe(f"{XACK_PREFIX}/{source}/+/receipts")
                part_topic = f"{XFER_PREFIX}/{target}/{source}/device-1"
                sender.publish(part_topic, f"part from {source}".encode())
                receivers[target].wait_for(part_topic, f"part from {source}".encode())
                receipt_topic = f"{XACK_PREFIX}/{source}/{target}/receipts"
                receivers[target].publish(receipt_topic, b"receipt")
                sender.wait_for(receipt_topic, b"receipt")
            finally:
                sender.close()
    finally:
        for client in receivers.values():
            client.close()


def test_gateways_log_in_at_their_own_cells_broker_only(brokers: dict[str, CellBroker], job_run: JobRun) -> None:
    home = _login(brokers, job_run, "cn", "cn-shenzhen-gw-01")
    assert home.reason == 0
    home.close()
    abroad = _login(brokers, job_run, "global", "cn-shenzhen-gw-01", secret_cell="cn")
    assert abroad.reason == NOT_AUTHORIZED  # the global cell's broker has no such client
    abroad.close()
