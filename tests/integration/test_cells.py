"""Residency cells with real components (docs/cells.md): three cells (cn, ap, global), each with its own
Mosquitto (generated dynamic-security credentials and bridges), ingest process and PostgreSQL databases;
simulated edge agents log in to their own cell's broker.

The bridges from cn and ap to global reach global's broker only through recording TCP relays started here,
so the tests see every byte that crosses each border, and can cut a link.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from devstack import PostgresServer
from devstack.cells import CellsStack
from ingest.cells.envelope import Part, encode_part, part_id, xfer_topic
from tests.integration.ingest_harness import query, wait_until
from tests.integration.relay import RecordingRelay

REPO = Path(__file__).resolve().parents[2]
SITES = ["cn-shenzhen", "de-munich", "vn-hanoi", "us-detroit"]


@pytest.fixture(scope="module")
def cells(pg_server: PostgresServer) -> Iterator[tuple[CellsStack, dict[tuple[str, str], RecordingRelay]]]:
    base = Path(tempfile.mkdtemp(prefix="cells-test-"))
    os.chmod(base, 0o755)
    relays: dict[tuple[str, str], RecordingRelay] = {}

    def relay(from_cell: str, to_cell: str, port: int) -> int:
        relays[(from_cell, to_cell)] = RecordingRelay(port).start()
        return relays[(from_cell, to_cell)].port

    stack = CellsStack(
        base_dir=base,
        pg=pg_server,
        relay=relay,
        ingest_env={"INGEST_FLUSH_INTERVAL_MS": "50", "INGEST_LINK_RESEND_S": "5"},
    )
    try:
        stack.start(sites=[])
        yield stack, relays
    finally:
        stack.cleanup()
        for r in relays.values():
            r.stop()


def _agent(stack: CellsStack, site: str, batches: int, *, cell: str | None = None) -> subprocess.Popen[bytes]:
    cfg = stack.agent_config(site, interval_ms=20, max_readings=10, max_latency_ms=200, cell=cell)
    cfg["state_dir"] = str(stack.dir / "agents" / f"{site}-{time.monotonic_ns()}")
    path = stack.dir / f"agent-{site}-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(path), "--batches", str(batches)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _keys(dsn: str, where: str, *params: Any) -> set[tuple[Any, ...]]:
    return set(query(dsn, f"SELECT device_id, seq, idx, name FROM readings WHERE {where}", *params))


def _links(stack: CellsStack, cell: str) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{stack.cells[cell].api_url}/api/v1/links", headers=stack.auth_headers, timeout=10).json()
    return {link["peer"]: link for link in body["links"]}


def _outbox(stack: CellsStack, cell: str) -> int:
    return int(query(stack.cells[cell].control_dsn, "SELECT count(*) FROM outbox")[0][0])


def _no_duplicates(dsn: str) -> bool:
    return query(
        dsn,
        "SELECT count(*) FROM (SELECT device_id, seq, idx, name FROM readings GROUP BY 1, 2, 3, 4 "
        "HAVING count(*) > 1) d",
    ) == [(0,)]


@pytest.mark.integration
def test_only_what_the_policy_allows_crosses_the_border(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    """Under load from CN, VN, DE and US sites: CN badges stay in cn-north, CN machine data reaches us-east,
    and no CN badge value, no raw payload and nothing of a category the policy keeps in China is in the bytes
    that crossed the cn -> global link (nor VN's personal data in the ap -> global link)."""
    stack, relays = cells
    agents = [_agent(stack, site, 40) for site in SITES]
    for proc in agents:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()[-3000:]
    cn, ap, glob = stack.cells["cn"], stack.cells["ap"], stack.cells["global"]
    wait_until(lambda: _outbox(stack, "cn") == 0 and _outbox(stack, "ap") == 0, 120, "every part receipted")

    cn_north, us_east = cn.region_dsns["cn-north"], glob.region_dsns["us-east"]
    badges = {b for (b,) in query(cn_north, "SELECT DISTINCT txt FROM readings WHERE name = 'operator_badge'")}
    assert badges and all(b.startswith("CN-B") for b in badges)  # the agents' CN badges, stored at home
    # Exactly once across the border: CN machine readings in us-east are exactly those of cn-north.
    home_machine = _keys(cn_north, "category = 'machine'")
    assert home_machine and _keys(us_east, "origin_country = 'CN'") == home_machine
    vn_machine = _keys(ap.region_dsns["ap-southeast"], "category = 'machine'")
    assert vn_machine and _keys(us_east, "origin_country = 'VN'") == vn_machine
    for dsn in (*glob.region_dsns.values(), ap.region_dsns["ap-southeast"]):
        assert query(dsn, "SELECT count(*) FROM readings WHERE origin_country = 'CN' AND category <> 'machine'") == [
            (0,)
        ]
        assert _no_duplicates(dsn)
    assert query(us_east, "SELECT count(*) FROM readings WHERE origin_country = 'VN' AND category <> 'machine'") == [
        (0,)
    ]

    crossed = relays[("cn", "global")].recorded
    assert b'"rows"' in crossed and b'"from_cell":"cn"' in crossed  # parts did cross, through the relay
    for badge in badges:
        assert badge.encode() not in crossed, f"CN badge {badge} crossed the border"
    assert b"operator_badge" not in crossed and b"personal" not in crossed
    assert b'"readings"' not in crossed and b'"sent_at"' not in crossed, "a raw payload crossed the border"
    vn_crossed = relays[("ap", "global")].recorded
    assert b"VN-B" not in vn_crossed and b"operator_badge" not in vn_crossed and b'"readings"' not in vn_crossed

    # Each decision was taken in the cell of origin; the receiving cell logged its own re-check.
    assert (
        query(
            cn.control_dsn,
            "SELECT count(*) FROM decisions WHERE region = 'us-east' AND category = 'machine' AND outcome = 'stored'",
        )[0][0]
        > 0
    )
    assert query(glob.control_dsn, "SELECT count(*) FROM decisions WHERE origin_country = 'CN'")[0][0] > 0
    assert query(cn.control_dsn, "SELECT count(*) FROM rejections") == [(0,)]
    assert query(glob.control_dsn, "SELECT count(*) FROM rejections") == [(0,)]


@pytest.mark.integration
def test_a_cut_link_delays_cross_border_copies_and_loses_nothing(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    """The cn -> global link is cut for over a minute under load: the CN cell keeps storing locally, parts wait,
    the lag rises; when the link returns every part arrives once and the lag falls."""
    stack, relays = cells
    cn, glob = stack.cells["cn"], stack.cells["global"]
    cn_north, us_east = cn.region_dsns["cn-north"], glob.region_dsns["us-east"]
    link = relays[("cn", "global")]
    before = len(_keys(cn_north, "device_id LIKE 'cn-%%'"))
    agent = _agent(stack, "cn-shenzhen", 400)
    wait_until(lambda: len(_keys(cn_north, "device_id LIKE 'cn-%%'")) > before + 50, 60, "CN traffic flowing")
    link.cut()
    cut_at = time.monotonic()
    wait_until(lambda: _links(stack, "cn")["global"]["up"] is False, 60, "the cn cell saw its bridge go down")
    stored_at_cut = len(_keys(cn_north, "device_id LIKE 'cn-%%'"))
    max_lag = 0.0
    while time.monotonic() - cut_at < 65:
        max_lag = max(max_lag, float(_links(stack, "cn")["global"]["lag_s"]))
        time.sleep(1)
    assert len(_keys(cn_north, "device_id LIKE 'cn-%%'")) > stored_at_cut + 100, "local ingest never stopped"
    assert _outbox(stack, "cn") > 0 and max_lag > 30, "parts waited and the lag rose"
    link.restore()
    out, _ = agent.communicate(timeout=300)
    assert agent.returncode == 0, out.decode()[-3000:]
    wait_until(lambda: _outbox(stack, "cn") == 0, 180, "the outbox drained after the link came back")
    wait_until(lambda: float(_links(stack, "cn")["global"]["lag_s"]) == 0.0, 30, "the lag fell")
    assert _links(stack, "cn")["global"]["up"] is True
    assert _keys(us_east, "origin_country = 'CN'") == _keys(cn_north, "category = 'machine'")
    assert _no_duplicates(us_east) and _no_duplicates(cn_north)


def _client(port: int, user: str | None, password: str | None, client_id: str) -> tuple[mqtt.Client, list[Any]]:
    acks: list[Any] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if user:
        client.username_pw_set(user, password)
    client.on_publish = lambda _c, _u, _mid, reason, _p: acks.append(reason)
    connected: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.append(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_until(lambda: bool(connected), 10, f"CONNACK for {user}")
    return client, [connected[0], acks]


@pytest.mark.integration
def test_only_peer_cells_may_publish_in_the_transfer_namespace(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    stack, _relays = cells
    glob = stack.cells["global"]
    part = Part(
        part_id=part_id("cn-shenzhen-cnc-01", 999_001, "us-east", "x"),
        from_cell="cn",
        to_cell="global",
        region="us-east",
        site_id="cn-shenzhen",
        device_id="cn-shenzhen-cnc-01",
        seq=999_001,
        origin_country="CN",
        policy_revision="x",
        decisions={"machine": part_id("a", 1, "b", "c")},
        readings=[(0, datetime.now(UTC), [("power_kw", "machine", 1.0, None, None)])],
    )
    topic = xfer_topic("global", "cn", "cn-shenzhen-cnc-01")
    # no anonymous access at all
    anon = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv5)
    refused: list[Any] = []
    anon.on_connect = lambda _c, _u, _f, reason, _p: refused.append(reason)
    anon.connect("127.0.0.1", glob.mqtt.port)
    anon.loop_start()
    wait_until(lambda: bool(refused), 10, "CONNACK for an anonymous client")
    assert refused[0].is_failure
    anon.loop_stop()
    # a gateway of global, and an ingest account of global (it writes the parts global sends, not receives):
    # both refused on publish. (A peer's bridge account may publish only under its own name: tests/broker.)
    for user in ("de-munich-gw-01", "ingest-2"):
        password = stack.secret_file("global", user).read_text().strip()
        client, (connack, acks) = _client(glob.mqtt.port, user, password, user)
        assert not connack.is_failure
        client.publish(topic, encode_part(part), qos=1).wait_for_publish(10)
        wait_until(functools.partial(bool, acks), 10, "PUBACK")
        assert acks[0].is_failure and "authorized" in str(acks[0]).lower(), (user, acks[0])
        client.disconnect()
        client.loop_stop()
    assert query(glob.region_dsns["us-east"], "SELECT count(*) FROM readings WHERE seq = 999001") == [(0,)]


@pytest.mark.integration
def test_a_part_the_receiving_policy_does_not_allow_is_quarantined_there(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    """Even from the authenticated peer: a part with CN badges for us-east, published in the cn cell (as its
    second ingest account would) and carried by the cn -> global bridge, is refused by global's own policy,
    quarantined with metadata only, nothing stored, and receipted (so the sender stops)."""
    stack, _relays = cells
    glob, cn = stack.cells["global"], stack.cells["cn"]
    part = Part(
        part_id=part_id("cn-shenzhen-cnc-01", 999_002, "us-east", "x"),
        from_cell="cn",
        to_cell="global",
        region="us-east",
        site_id="cn-shenzhen",
        device_id="cn-shenzhen-cnc-01",
        seq=999_002,
        origin_country="CN",
        policy_revision="x",
        decisions={"personal": part_id("a", 2, "b", "c")},
        readings=[(0, datetime.now(UTC), [("operator_badge", "personal", None, "CN-B-SMUGGLED", None)])],
    )
    client, (connack, _acks) = _client(
        cn.mqtt.port, "ingest-2", stack.secret_file("cn", "ingest-2").read_text().strip(), "ingest-2"
    )
    assert not connack.is_failure
    receipts: list[bytes] = []
    client.on_message = lambda _c, _u, m: receipts.append(bytes(m.payload))
    client.subscribe("xack/v1/cn/+/receipts", qos=1)
    client.publish(xfer_topic("global", "cn", "cn-shenzhen-cnc-01"), encode_part(part), qos=1).wait_for_publish(10)
    wait_until(
        lambda: bool(
            query(glob.control_dsn, "SELECT 1 FROM rejections WHERE code = 'transfer_refused' AND seq = 999002")
        ),
        60,
        "the part quarantined",
    )
    detail, kept = query(glob.control_dsn, "SELECT detail, payload_kept FROM rejections WHERE seq = 999002")[0]
    assert "does not allow personal data from CN in us-east" in detail and kept is False
    for dsn in glob.region_dsns.values():
        assert query(dsn, "SELECT count(*) FROM readings WHERE txt = 'CN-B-SMUGGLED'") == [(0,)]
        assert query(dsn, "SELECT count(*) FROM quarantine_payloads") == [(0,)]
    wait_until(lambda: any(str(part.part_id) in r.decode() for r in receipts), 30, "the refused part receipted")
    client.disconnect()
    client.loop_stop()


@pytest.mark.integration
def test_an_agent_pointed_at_the_wrong_cell_is_refused(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    """Shenzhen's gateway, configured with the global cell's broker: that broker has no such identity (each cell's
    broker knows only the gateways of its own sites), so the connection is refused and nothing arrives."""
    stack, _relays = cells
    for cell, refused in (("global", True), ("cn", False)):
        cfg = stack.agent_config("cn-shenzhen", cell=cell)
        path = stack.dir / f"agent-check-{cell}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        check = subprocess.run(
            [sys.executable, "-m", "edge_agent", "check", "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        broker_line = next(x for x in check.stdout.splitlines() if "broker" in x.split(":")[0])
        if refused:
            assert broker_line.startswith("FAIL") and "not authorized" in broker_line.lower(), check.stdout
            assert f"127.0.0.1:{stack.cells['global'].mqtt.port}" in broker_line
        else:
            assert broker_line.startswith("ok"), check.stdout


@pytest.mark.integration
def test_a_topology_serving_a_cn_site_from_a_non_cn_cell_is_refused_at_start(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "deploy/local/cells.yaml").read_text())
    raw["cells"]["cn"]["sites"] = []
    raw["cells"]["global"]["sites"].append("cn-shenzhen")
    topology = tmp_path / "cells.yaml"
    topology.write_text(yaml.safe_dump(raw))
    env = {
        **os.environ,
        "INGEST_TOPOLOGY_FILE": str(topology),
        "INGEST_CELL": "global",
        "INGEST_CONTROL_DSN": "postgresql://nobody@127.0.0.1:1/none",
        "INGEST_POLICY_WATCH_S": "0",
        "INGEST_REGION_DSNS": json.dumps(
            {"eu-central": "postgresql://x@127.0.0.1:1/a", "us-east": "postgresql://x@127.0.0.1:1/b"}
        ),
    }
    check = subprocess.run(
        [sys.executable, "-m", "ingest", "check"], env=env, capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert check.returncode == 1
    line = next(x for x in check.stdout.splitlines() if "raw payload" in x)
    assert line.startswith("FAIL")
    assert "site cn-shenzhen (CN) may not be served by cell global (DE)" in line
    assert "PIPL Art 40" in line and "data.residency.raw_processing" in line


@pytest.mark.integration
def test_serve_refuses_the_same_topology(tmp_path: Path, pg_server: PostgresServer) -> None:
    raw = yaml.safe_load((REPO / "deploy/local/cells.yaml").read_text())
    raw["cells"]["cn"]["sites"] = []
    raw["cells"]["global"]["sites"].append("cn-shenzhen")
    topology = tmp_path / "cells.yaml"
    topology.write_text(yaml.safe_dump(raw))
    control = pg_server.create_database("cells_misconfigured_control")
    env = {
        **os.environ,
        "INGEST_TOPOLOGY_FILE": str(topology),
        "INGEST_CELL": "global",
        "INGEST_CONTROL_DSN": control,
        "INGEST_POLICY_WATCH_S": "0",
        "INGEST_REGION_DSNS": json.dumps(
            {
                "eu-central": pg_server.create_database("cells_mis_eu"),
                "us-east": pg_server.create_database("cells_mis_us"),
            }
        ),
    }
    serve = subprocess.run(
        [sys.executable, "-m", "ingest", "serve"], env=env, capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert serve.returncode == 2
    assert "cells.global.sites: site cn-shenzhen (CN) may not be served by cell global (DE)" in serve.stderr
    with psycopg.connect(control) as conn:  # nothing was stored or decided
        assert conn.execute("SELECT count(*) FROM decision_log").fetchone() == (0,)


@pytest.mark.integration
def test_queries_federate_only_aggregates_of_machine_data(
    cells: tuple[CellsStack, dict[tuple[str, str], RecordingRelay]],
) -> None:
    """The global cell's API answers the aggregate of Shenzhen's power_kw over cn-north (asked from the cn cell)
    and us-east (its own), counting no value twice; values of a region of another cell are not served here
    (421 naming the cell); a peer never hands out anything but machine aggregates."""
    stack, _relays = cells
    glob, cn = stack.cells["global"], stack.cells["cn"]
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=6)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "bucket": "1h",
    }
    if not query(cn.region_dsns["cn-north"], "SELECT 1 FROM readings WHERE name = 'power_kw' LIMIT 1"):
        agent = _agent(stack, "cn-shenzhen", 5)
        assert agent.wait(300) == 0
        wait_until(lambda: _outbox(stack, "cn") == 0, 120, "parts receipted")
    answer = httpx.get(
        f"{glob.api_url}/api/v1/metrics/power_kw/aggregate",
        headers=stack.auth_headers,
        params={**window, "site": "cn-shenzhen"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    home = query(cn.region_dsns["cn-north"], "SELECT count(*) FROM readings WHERE name = 'power_kw'")[0][0]
    regions = {r["region"]: r for r in body["regions"]}
    assert set(regions) == {"cn-north", "us-east"}
    assert regions["cn-north"]["values_stored"] == home and body["total"]["count"] == home  # no value twice
    assert sum(r["values_counted"] for r in regions.values()) == home

    latest = httpx.get(
        f"{glob.api_url}/api/v1/devices/cn-shenzhen-cnc-01/latest",
        params={"region": "cn-north"},
        headers=stack.auth_headers,
        timeout=10,
    )
    assert latest.status_code == 421 and "hosted by cell 'cn'" in latest.json()["detail"], latest.text
    badges = httpx.get(
        f"{cn.api_url}/api/v1/metrics/operator_badge/partials",
        headers=stack.auth_headers,
        params={"region": "cn-north", "devices": "cn-shenzhen-cnc-01", **window},
        timeout=10,
    )
    assert badges.status_code == 400 and "not machine data" in badges.json()["detail"]
