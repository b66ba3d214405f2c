"""The decision log with one row per distinct decision per flush answers the questions the log with one row per
message x category x region answered (docs/audit-log.md): the decision list and its totals, the exports, the flow
matrix, the what-if replay, and for every stored value and every quarantine item the decision that placed or
refused it.

The same messages of the demo registry (every device, several readings each, a redelivery, a message with an
undeclared field) are routed by the real router on the real policy, then written into two control stores: by the
ingest's ``ControlWriter`` in flushes of several sizes (store *grouped*), and one decision per message x category x
region through the ``decisions`` view (store *per message*: the shape of the log before migration 0020, one row
per message, with the same ids and times). Both are then asked the same questions through the API and the
what-if reader.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from bench.ingest.workload import Workload, make_router
from devstack import PostgresServer
from ingest.api import create_app
from ingest.auth.roles import Role
from ingest.pipeline.router import Routed, Router
from ingest.pipeline.transforms import Pseudonymizer
from ingest.records import DecisionRecord
from ingest.registry import Registry
from ingest.runtime import Runtime
from ingest.store.control import ControlRecords, ControlWriter
from ingest.store.migrate import migrate
from ingest.store.recorded_decisions import read_patterns
from policy import EmbeddedPolicyEngine
from policy.whatif import replay
from tests.ingest.api.api_seed import FAST, REGISTRY_FILE, build_runtime, close_runtime
from tests.ingest.api.auth_support import bearer, issue_token
from tests.ingest.transform_policy import TRANSFORM_POLICY

_VIEW_INSERT = (
    "INSERT INTO decisions (decision_id, decided_at, device_id, seq, site_id, origin_country, category, region,"
    " destination_country, outcome, allow, localization, requires, transforms, reasons, policy_revision, readings,"
    " input) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _routed(transform_policy: Path) -> list[Routed]:
    workload = Workload(REGISTRY_FILE, readings_per_device=60, seed=3)
    router = make_router(workload.registry)
    messages = workload.messages(len(workload.devices) * 12, 1, seq_base=10)
    messages += workload.messages(len(workload.devices) * 2, 5, seq_base=40)
    routed = [router.route(m.topic, m.payload) for m in messages]
    # a redelivery of two messages already routed, and a message with a field its profile does not declare
    routed += [router.route(m.topic, m.payload) for m in messages[3:5]]
    bad = messages[7]
    routed.append(router.route(bad.topic, bad.payload.replace(b'"values":{', b'"values":{"not_declared":1,', 1)))
    (transform_policy / "rego").mkdir()
    (transform_policy / "data").mkdir()
    (transform_policy / "rego" / "t.rego").write_text(TRANSFORM_POLICY)
    transforming = Router(
        registry=workload.registry,
        policy=EmbeddedPolicyEngine.from_dir(transform_policy),
        pseudonymizer=Pseudonymizer(b"audit"),
        max_bytes=1 << 20,
    )
    routed += [transforming.route(m.topic, m.payload) for m in workload.messages(len(workload.devices) * 4, 2, 100)]
    return routed


def _write_grouped(dsn: str, routed: list[Routed]) -> ControlWriter:
    writer = ControlWriter(dsn)
    sizes = itertools.cycle([1, 7, 40, 3, 100])
    at = 0
    while at < len(routed):
        flush = routed[at : at + next(sizes)]
        writer.write_groups([ControlRecords(m.decisions, m.rejections) for m in flush])
        at += len(flush)
    return writer


def _write_per_message(dsn: str, grouped_dsn: str, routed: list[Routed]) -> None:
    """One row per message x category x region, through the view, at the time the grouped store logged it."""
    with psycopg.connect(grouped_dsn) as conn:
        times = {
            (str(did), seq): at for did, seq, at in conn.execute("SELECT decision_id, seq, decided_at FROM decisions")
        }
    decisions: list[DecisionRecord] = [d for m in routed for d in m.decisions]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for d in decisions:
            cur.execute(
                _VIEW_INSERT,
                (
                    d.decision_id,
                    times[str(d.decision_id), d.seq],
                    d.device_id,
                    d.seq,
                    d.site_id,
                    d.origin_country,
                    d.category,
                    d.region,
                    d.destination_country,
                    d.outcome,
                    d.decision.allow,
                    d.decision.localization,
                    Jsonb(d.decision.requires),
                    Jsonb(d.decision.transforms),
                    Jsonb(d.decision.reasons),
                    d.decision.policy_revision,
                    d.readings,
                    Jsonb(d.input),
                ),
            )
    writer = ControlWriter(dsn)
    writer.write(decisions=[], rejections=[r for m in routed for r in m.rejections], batches={}, statuses=[])
    writer.close()


@pytest.fixture(scope="module")
def stores(api_pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[Routed]]]:
    routed = _routed(tmp_path_factory.mktemp("transform-policy"))
    grouped = api_pg.create_database("audit_grouped")
    per_message = api_pg.create_database("audit_per_message")
    for dsn in (grouped, per_message):
        migrate(dsn, "control", store="control")
    _write_grouped(grouped, routed).close()
    _write_per_message(per_message, grouped, routed)
    yield grouped, per_message, routed


@pytest.fixture(scope="module")
def clients(
    stores: tuple[str, str, list[Routed]], api_dsns: tuple[str, dict[str, str]], api_registry: Registry
) -> Iterator[tuple[TestClient, TestClient]]:
    runtimes: list[Runtime] = []
    made: list[TestClient] = []
    for dsn in stores[:2]:
        runtime = build_runtime(dsn, api_dsns[1], api_registry, None)
        runtimes.append(runtime)
        token = issue_token(dsn, list(Role), None, name="audit-admin")[1]
        made.append(TestClient(create_app(runtime, settings=FAST), headers=bearer(token)))
    yield made[0], made[1]
    for runtime in runtimes:
        close_runtime(runtime)


def test_the_grouped_log_is_smaller_and_holds_every_message_decision_once(
    stores: tuple[str, str, list[Routed]],
) -> None:
    grouped, per_message, routed = stores
    unique = {(d.decision_id, d.seq) for m in routed for d in m.decisions}
    outcomes = {d.outcome for m in routed for d in m.decisions}
    assert outcomes == {"stored", "transformed", "denied"}, "the workload must exercise every outcome"
    for dsn in (grouped, per_message):
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT (decision_id, seq)) FROM decisions").fetchone() == (
                len(unique),
                len(unique),
            )
    with psycopg.connect(grouped) as a, psycopg.connect(per_message) as b:
        rows_a = a.execute("SELECT count(*) FROM decision_log").fetchone()
        rows_b = b.execute("SELECT count(*) FROM decision_log").fetchone()
    assert rows_a is not None and rows_b is not None and rows_a[0] * 3 < rows_b[0] == len(unique)


_FILTERS: list[dict[str, Any]] = [
    {},
    {"limit": 7, "offset": 0},
    {"limit": 7, "offset": 7},
    {"limit": 25, "offset": 40},
    {"outcome": "denied"},
    {"outcome": "transformed", "include_input": True},
    {"region": "us-east", "category": "personal"},
    {"origin": "cn"},
    {"device_id": "de-munich-cnc-01", "limit": 1000},
    {"device_id": "vn-hanoi-press-01", "region": "ap-southeast", "include_input": True, "limit": 1000},
]


@pytest.mark.parametrize("params", _FILTERS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "all")
def test_the_decision_list_is_the_same(clients: tuple[TestClient, TestClient], params: dict[str, Any]) -> None:
    a, b = (c.get("/api/v1/decisions", params=params) for c in clients)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["total"] > 0
    assert a.json() == b.json()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_exports_are_the_same(clients: tuple[TestClient, TestClient], fmt: str) -> None:
    params = {"format": fmt, "include_input": "true"}
    a, b = (c.get("/api/v1/decisions/export", params=params) for c in clients)
    assert a.status_code == b.status_code == 200
    assert a.text.count("\n") > 100
    assert a.text == b.text


def test_the_flow_matrix_is_the_same(clients: tuple[TestClient, TestClient]) -> None:
    a, b = (c.get("/api/v1/flows", params={"window_s": 3600}).json() for c in clients)
    for body in (a, b):
        body.pop("since"), body.pop("until")  # the request's clock
    assert sum(t["decisions"] for t in a["totals"]) > 0
    assert a == b


def test_the_what_if_replay_is_the_same(stores: tuple[str, str, list[Routed]]) -> None:
    grouped, per_message, _ = stores
    with psycopg.connect(grouped) as conn:
        row = conn.execute("SELECT min(decided_at), max(decided_at) FROM decision_log").fetchone()
    assert row is not None
    since, until = row[0], row[1] + timedelta(seconds=1)
    key = lambda p: (p.origin, p.category, p.site_id, p.revision, repr(p.parts))  # noqa: E731
    patterns = [sorted(read_patterns(dsn, since=since, until=until), key=key) for dsn in (grouped, per_message)]
    assert patterns[0] == patterns[1] and sum(p.messages for p in patterns[0]) > 0
    engine = EmbeddedPolicyEngine.from_dir()
    reports = [replay(p, engine, since=since, until=until).to_json() for p in patterns]
    for report in reports:
        report.pop("seconds")
    assert reports[0] == reports[1]


def _decision_of(conn: psycopg.Connection[Any], where: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT region, category, outcome, allow, policy_revision, reasons, transforms, input FROM decisions"
        f" WHERE {where} ORDER BY region, category",
        params,
    ).fetchall()


def test_every_value_and_quarantine_item_leads_to_its_decision(stores: tuple[str, str, list[Routed]]) -> None:
    grouped, per_message, routed = stores
    with psycopg.connect(grouped) as a, psycopg.connect(per_message) as b:
        checked = 0
        for m in routed:
            for region, rows in m.rows.items():
                for key in {(r.decision_id, r.seq, r.category) for r in rows}:
                    found = _decision_of(a, "decision_id = %s AND seq = %s", key[:2])
                    assert len(found) == 1 and found[0][:2] == (region, key[2]) and found[0][3] is True
                    assert found == _decision_of(b, "decision_id = %s AND seq = %s", key[:2])
                    checked += 1
        assert checked > 100
        quarantined = a.execute("SELECT device_id, seq, code FROM rejections WHERE device_id IS NOT NULL").fetchall()
        assert [code for *_, code in quarantined] == ["undeclared_field"]
        for device, seq, _ in quarantined:
            found = _decision_of(a, "device_id = %s AND seq = %s", (device, seq))
            assert found and found == _decision_of(b, "device_id = %s AND seq = %s", (device, seq))
