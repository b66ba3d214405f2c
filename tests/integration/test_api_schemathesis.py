"""A schemathesis run with every check against the API's OpenAPI schema finds nothing.

The real service (``python -m ingest serve``: real policy, real PostgreSQL stores, real Mosquitto, a little
real traffic so the read endpoints have rows to return) is fuzzed over HTTP by the schemathesis CLI, as an
operator would run it, with ``--checks all``: no server error, every status code and response body as the
schema documents it (one error body model for every 4xx), schema-violating requests refused, schema-valid
ones accepted, ``Allow`` on 405, authentication enforced, nothing usable after it was deleted. It runs
twice: with an admin token (every role, every region: every operation is reachable) and with an engineer
token scoped to one region (most write operations answer 403, personal data of other regions is withheld).
The number of examples per operation is bounded to keep the suite's time in check
(``SCHEMATHESIS_MAX_EXAMPLES``).

Endpoints whose nature is to change the service's state are fuzzed too (their inputs are random, so they
mostly answer 404/409/422); the replica runs on its own databases so nothing leaks into other tests.

The rate limits of the fuzzed replica are raised (``INGEST_API_RATE_LIMIT*``): schemathesis sends thousands
of requests a minute from one address, many of them deliberately without a token (the ``ignored_auth`` and
``missing_required_header`` checks), and a 429 there would hide the answer under test. The limiter itself is
tested in ``tests/ingest/api/test_api_auth.py`` and ``tests/ingest/api/test_api_proxies.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import MosquittoServer
from ingest.auth.roles import Role
from ingest.registry import Registry
from tests.integration.ingest_harness import Replica, all_home_readings_stored, issue_headers, wait_until
from tests.integration.load import AgentLoad

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))

# Checks left out, each for a reason that is a property of schemathesis, not of the API (none today):
EXCLUDED_CHECKS: dict[str, str] = {}

# Operations where a schema-valid request may be refused, and why: the OpenAPI schema cannot express the
# rule (the check `positive_data_acceptance` expects 2xx/401/403/404/409/429 for every schema-valid request).
# Each entry: (method, path, extra accepted statuses, why). Nothing else is relaxed.
POSITIVE_DATA_EXCEPTIONS: list[tuple[str, str, list[int], str]] = [
    (
        "GET",
        "/api/v1/devices",
        [400],
        "site ids change at run time (operators register sites through the API), so "
        "the schema cannot list them; an unknown site is 400 naming the known ones",
    ),
    (
        "GET",
        "/api/v1/devices/{device_id}/series",
        [400],
        "the field name must be one the device's profile "
        "declares (a set per path device), start before end, and at most INGEST_API_MAX_SERIES_BUCKETS points: "
        "cross-parameter rules",
    ),
    (
        "GET",
        "/api/v1/metrics/{name}/aggregate",
        [400],
        "the metric and site come from profiles and run-time "
        "sites; start before end and the point limit are cross-parameter rules",
    ),
    ("GET", "/api/v1/audit", [400], "since before until: a cross-parameter rule"),
    ("GET", "/api/v1/decisions", [400], "since before until: a cross-parameter rule"),
    ("GET", "/api/v1/decisions/export", [400], "since before until: a cross-parameter rule"),
    ("GET", "/api/v1/rates", [400], "at most 720 steps in the window: a cross-parameter rule (window_s / step_s)"),
    (
        "GET",
        "/api/v1/metrics/{name}/partials",
        [400, 421],
        "the metric must be a machine field declared by every "
        "device asked for (profiles and devices change at run time); a region of another cell is 421 naming it",
    ),
    ("GET", "/api/v1/audit/export", [400], "since before until: a cross-parameter rule"),
    (
        "POST",
        "/api/v1/devices",
        [422],
        "a device's site must exist (run-time set, 422 naming the field and listing the sites)",
    ),
    ("PUT", "/api/v1/devices/{device_id}", [422], "as POST /devices"),
    (
        "POST",
        "/api/v1/policy/drafts",
        [422],
        "a draft must hold rego/ and data/ files that form a policy "
        "directory (at least one of each): the body's meaning, not its shape",
    ),
    ("POST", "/api/v1/policy/whatif", [422], "since before until, and the draft must load: cross-field rules"),
]


def _config(path: Path) -> Path:
    """A schemathesis.toml with the exceptions above (per operation; the defaults stay for every other one)."""
    default = ["2xx", "401", "403", "404", "409", "429"]
    lines = []
    for method, api_path, extra, _why in POSITIVE_DATA_EXCEPTIONS:
        statuses = ", ".join(f'"{s}"' for s in [*default, *map(str, extra)])
        lines += [
            "[[operations]]",
            f'include-name = "{method} {api_path}"',
            "[operations.checks.positive_data_acceptance]",
            f"expected-statuses = [{statuses}]",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def _run(
    replica: Replica, authorization: str, tmp_path: Path, who: str, max_examples: int = MAX_EXAMPLES
) -> tuple[str, dict[str, set[int]]]:
    report = tmp_path / f"schemathesis-{who}.ndjson"
    config = _config(tmp_path / "schemathesis.toml")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        replica.url("/api/v1/openapi.json"),
        "--checks",
        "all",
        *(["--exclude-checks", ",".join(EXCLUDED_CHECKS)] if EXCLUDED_CHECKS else []),
        "--header",
        f"Authorization: {authorization}",
        "--max-examples",
        str(max_examples),
        "--seed",
        "20261122",
        # policy activation and draft upload run the platform invariants and the Rego suite (seconds, more on a
        # loaded machine): the response-time check gets the same generous bound as the request itself
        "--request-timeout",
        "120",
        "--max-response-time",
        "120",
        "--continue-on-failure",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--warnings",
        "off",
        "--no-color",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )  # its example database (.schemathesis/) stays out of the repo
    output = done.stdout + done.stderr
    (tmp_path / f"schemathesis-{who}.txt").write_text(output)
    assert done.returncode == 0, f"schemathesis ({who}) found failures (exit {done.returncode}):\n{output[-12000:]}"
    return output, _statuses(report)


@pytest.mark.integration
def test_schemathesis_with_every_check_finds_nothing(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], registry: Registry, tmp_path: Path
) -> None:
    control, regions = databases
    replica = Replica(
        "ingest-fuzz",
        mqtt_broker,
        control,
        regions,
        tmp_path,
        INGEST_API_RATE_LIMIT="1000000/minute",
        INGEST_API_RATE_LIMIT_UNAUTHENTICATED="1000000/minute",
    ).start()
    admin = replica.headers["Authorization"]  # a user with every role and every region
    engineer = issue_headers(control, [Role.ENGINEER], ["eu-central"])["Authorization"]
    try:
        acked = AgentLoad(mqtt_broker, registry, ["de-munich", "cn-shenzhen"], tmp_path, batches=5).start().join(60)
        wait_until(lambda: all_home_readings_stored(acked, regions, registry), 60, "the traffic is stored")

        # the engineer first: the admin's run changes users and tokens (its stateful phase follows the links of
        # GET /users into PATCH and DELETE, so it may disable any user listed, the engineer and itself included)
        # (half the examples: most of its operations answer 403, which a few requests show)
        output, statuses = _run(replica, engineer, tmp_path, "engineer", max_examples=max(1, MAX_EXAMPLES // 2))
        assert len(statuses) >= 40, f"only {len(statuses)} operations were exercised:\n{output[-3000:]}"
        forbidden = {op for op, codes in statuses.items() if 403 in codes}
        assert "POST /api/v1/users" in forbidden and "POST /api/v1/policy/activate" in forbidden
        assert any(200 <= c < 300 for c in statuses["GET /api/v1/devices/{device_id}/latest"])
        assert not any(c >= 500 or c == 429 for codes in statuses.values() for c in codes)

        output, statuses = _run(replica, admin, tmp_path, "admin")
        answered = {op for op, codes in statuses.items() if any(200 <= c < 300 for c in codes)}
        assert len(statuses) >= 40, f"only {len(statuses)} operations were exercised:\n{output[-3000:]}"
        # authenticated for real: most operations answered some request with success, not only 401/422
        assert len(answered) >= 0.6 * len(statuses), (
            f"only {len(answered)} of {len(statuses)} operations ever answered 2xx: "
            f"{ {op: sorted(codes) for op, codes in statuses.items() if op not in answered} }"
        )
        assert not any(c >= 500 for codes in statuses.values() for c in codes)
        assert not any(c == 429 for codes in statuses.values() for c in codes), "the run tripped the rate limiter"
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
