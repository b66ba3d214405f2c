"""A schemathesis run against the API's OpenAPI schema finds no server error.

The real service (``python -m ingest serve``: real policy, real PostgreSQL stores, real Mosquitto, a little
real traffic so the read endpoints have rows to return) is fuzzed over HTTP by the schemathesis CLI, as an
operator would run it, with an admin token (every role, every region: every operation is reachable) and
with the check ``not_a_server_error`` (no 5xx). Every operation of the schema is exercised; the number of
examples per operation is bounded to keep the suite's time in check (``SCHEMATHESIS_MAX_EXAMPLES``).

Endpoints whose nature is to change the service's state are fuzzed too (their inputs are random, so they
mostly answer 404/409/422); the replica runs on its own databases so nothing leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import MosquittoServer
from ingest.registry import Registry
from tests.integration.ingest_harness import Replica, all_home_readings_stored, wait_until
from tests.integration.load import AgentLoad

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))


@pytest.mark.integration
def test_schemathesis_finds_no_server_error(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    replica = Replica("ingest-fuzz", mqtt_broker, control, regions, tmp_path,
                      INGEST_API_RATE_LIMIT="100000/minute").start()
    authorization = replica.headers["Authorization"]  # a user with every role and every region
    try:
        acked = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen"], tmp_path, batches=5).start().join(60)
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 60, "the traffic is stored")
        report = tmp_path / "schemathesis.json"
        command = [
            str(Path(sys.executable).with_name("schemathesis")), "run", replica.url("/api/v1/openapi.json"),
            "--checks", "not_a_server_error",
            "--header", f"Authorization: {authorization}",
            "--max-examples", str(MAX_EXAMPLES),
            "--seed", "20261122",
            "--request-timeout", "20",
            "--continue-on-failure",
            "--report", "ndjson", "--report-ndjson-path", str(report),
            "--warnings", "off",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                              cwd=tmp_path)  # its example database (.schemathesis/) stays out of the repo
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"schemathesis found failures (exit {done.returncode}):\n{output[-8000:]}"
        statuses = _statuses(report)
        answered = {op for op, codes in statuses.items() if any(200 <= c < 300 for c in codes)}
        assert len(statuses) >= 40, f"only {len(statuses)} operations were exercised:\n{output[-3000:]}"
        # authenticated for real: most operations answered some request with success, not only 401/422
        assert len(answered) >= 0.6 * len(statuses), (
            f"only {len(answered)} of {len(statuses)} operations ever answered 2xx: "
            f"{ {op: sorted(codes) for op, codes in statuses.items() if op not in answered} }")
        assert not any(c >= 500 for codes in statuses.values() for c in codes)
    finally:
        replica.stop()


def _statuses(ndjson: Path) -> dict[str, set[int]]:
    """Operation label -> the HTTP status codes it answered, from schemathesis's NDJSON event stream."""
    found: dict[str, set[int]] = {}
    for line in ndjson.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        label = recorder.get("label", "")
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response")
            if response and " /" in label:
                found.setdefault(label.split(" -> ")[0], set()).add(int(response["status_code"]))
    return found
