"""Runs the real ingest service in-process against real Mosquitto and PostgreSQL, for integration tests."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from devstack import MosquittoServer
from ingest.auth.roles import Role
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.store import users
from ingest.store.migrate import migrate

REGISTRY = "deploy/local/registry.yaml"


@contextmanager
def running_ingest(
    broker: MosquittoServer, control: str, regions: dict[str, str], **overrides: Any
) -> Iterator[tuple[IngestService, TestClient]]:
    settings = load_settings(
        mqtt_port=broker.port,
        control_dsn=control,
        region_dsns=regions,
        registry_file=overrides.pop("registry_file", REGISTRY),
        mqtt_client_id=overrides.pop("mqtt_client_id", f"ingest-test-{time.monotonic_ns()}"),
        flush_interval_ms=overrides.pop("flush_interval_ms", 50),
        **overrides,
    )
    service = IngestService(settings)  # migrates the stores
    with TestClient(service.app(), headers=admin_headers(control)) as client:
        wait_until(lambda: service.stats.broker_connected, 10, "ingest connected to the broker")
        yield service, client


def admin_headers(control: str) -> dict[str, str]:
    """Authorization of a new user with every role and every region (the control store is migrated here)."""
    return issue_headers(control, list(Role), None, prefix="harness-admin")


def issue_headers(
    control: str, roles: list[Role], regions: list[str] | None, *, prefix: str = "harness-user"
) -> dict[str, str]:
    """Authorization of a new user with ``roles`` and ``regions`` (None: every region)."""
    migrate(control, "control", store="control")
    name = f"{prefix}-{time.monotonic_ns()}"
    with psycopg.connect(control) as conn, conn.transaction():
        users.create_user(conn, name=name, roles=roles, regions=regions, actor="test-setup")
        _, issued = users.create_token(conn, user=name, actor="test-setup")
    return {"Authorization": f"Bearer {issued.text}"}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def publisher(broker: MosquittoServer, client_id: str = "test-publisher") -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def batch_payload(device_id: str, seq: int, readings: list[dict[str, Any]], **extra: Any) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "v": 1,
            "device_id": device_id,
            "seq": seq,
            "sent_at": now,
            "readings": [{"ts": now, "values": r} for r in readings],
            **extra,
        }
    ).encode()


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


_STARTED: set[Replica] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Replicas a failed test did not stop (e.g. started in a list comprehension that failed half-way)."""
    for replica in list(_STARTED):
        replica.kill()


class Replica:
    """One ingest replica as a subprocess (`python -m ingest serve`), killable with SIGKILL."""

    def __init__(
        self, name: str, broker: MosquittoServer, control: str, regions: dict[str, str], log_dir: Any, **env: str
    ) -> None:
        from devstack.ports import free_port

        self.name = name
        self.api_port = free_port()
        self.log = log_dir / f"{name}.log"
        self.env = {
            **os.environ,
            "INGEST_MQTT_PORT": str(broker.port),
            "INGEST_MQTT_CLIENT_ID": name,
            "INGEST_CONTROL_DSN": control,
            "INGEST_REGION_DSNS": json.dumps(regions),
            "INGEST_REGISTRY_FILE": REGISTRY,
            "INGEST_API_PORT": str(self.api_port),
            "INGEST_FLUSH_INTERVAL_MS": "50",
            "INGEST_WORKERS": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.headers = admin_headers(control)

    def start(self) -> Replica:
        import httpx

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"replica {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                return bool(
                    httpx.get(self.url("/api/v1/stats"), headers=self.headers, timeout=1).json().get("broker_connected")
                )
            except httpx.HTTPError:
                return False

        _STARTED.add(self)
        try:
            wait_until(up, 60, f"replica {self.name} connected")
        except BaseException:
            self.kill()  # a replica that did not come up must not outlive the test
            raise
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(self.url("/api/v1/stats"), headers=self.headers, timeout=5).json()  # type: ignore[no-any-return]  # the API's JSON

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def distinct_readings(dsn: str, device: str) -> int:
    return int(
        query(dsn, "SELECT count(*) FROM (SELECT DISTINCT seq, idx FROM readings WHERE device_id = %s) r", device)[0][0]
    )


def all_home_readings_stored(acked: dict[str, int], regions: dict[str, str], registry: Registry) -> bool:
    """Every reading the agents got acknowledged is in its device's home region (a wait predicate: the
    ingest's in-flight count can touch zero between two deliveries of a backlog, so it is no signal)."""
    return all(
        distinct_readings(regions[registry.sites[registry.devices[d].site].home_region], d) == n
        for d, n in acked.items()
    )


def assert_home_regions_hold_exactly(acked: dict[str, int], regions: dict[str, str], registry: Registry) -> None:
    for device, n in acked.items():
        home = registry.sites[registry.devices[device].site].home_region
        assert n > 0
        assert distinct_readings(regions[home], device) == n, device
    for dsn in regions.values():  # the primary key makes a duplicate impossible; check the invariant anyway
        assert query(
            dsn,
            "SELECT count(*) FROM (SELECT device_id, seq, idx, name FROM readings "
            "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
        ) == [(0,)]
