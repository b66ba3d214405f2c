"""Registry changes through the API reach the data path of every replica: a device unknown at start is
quarantined as unknown_device; once registered (on one replica) it routes on both; a site change (safeguards
in force, then the country) changes the next decisions on both. Real Mosquitto, PostgreSQL, Rego policy;
one replica in-process and one as a subprocess on the same shared subscription."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devstack import MosquittoServer
from ingest.auth.roles import Role
from ingest.store import users
from tests.integration.ingest_harness import Replica, batch_payload, publisher, query, running_ingest, wait_until

DEVICE = "de-berlin-cnc-01"
TOPIC = f"tele/v1/de-berlin/{DEVICE}"
CNC = {"spindle_speed_rpm": 1200.0, "spindle_temp_c": 41.5, "operator_badge": "DE-B1001"}
BERLIN = {"country": "DE", "home_region": "eu-central", "name": "Berlin plant"}
FAST_REFRESH = 0.2


def _operator_token(control: str) -> str:
    with psycopg.connect(control) as conn, conn.transaction():
        # an operator registers sites and devices; their residency facts (safeguards, country) need compliance
        users.create_user(
            conn, name="olga", roles=[Role.OPERATOR, Role.COMPLIANCE], regions=["eu-central"], actor="test"
        )
        return users.create_token(conn, user="olga", actor="test")[1].text


def _decisions(control: str, seqs: range) -> list[tuple[Any, ...]]:
    return query(
        control,
        "SELECT seq, category, region, outcome, origin_country, input->'safeguards' FROM decisions"
        " WHERE device_id = %s AND seq BETWEEN %s AND %s ORDER BY seq, category, region",
        DEVICE,
        seqs.start,
        seqs.stop - 1,
    )


@pytest.mark.integration
def test_registry_changes_reach_every_replica(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    control, regions = databases
    token = _operator_token(control)
    auth = {"Authorization": f"Bearer {token}"}
    other = Replica(
        "ingest-other", mqtt_broker, control, regions, tmp_path, INGEST_REGISTRY_REFRESH_S=str(FAST_REFRESH)
    )
    other.headers = auth  # the operator reads the replica's /stats too
    pub = publisher(mqtt_broker)
    try:
        other.start()
        with running_ingest(mqtt_broker, control, regions, registry_refresh_s=FAST_REFRESH) as (service, api):

            def revisions() -> tuple[int, int]:
                here = api.get("/api/v1/registry", headers=auth).json()["revision"]
                there = httpx.get(other.url("/api/v1/registry"), headers=auth, timeout=5).json()["revision"]
                return here, there

            def stored() -> tuple[int, int]:
                return service.stats.snapshot()["messages"]["stored"], other.stats()["messages"]["stored"]

            def publish(seqs: range) -> tuple[int, int]:
                """Publish one batch per seq; wait until every one is decided and stored; return each replica's share.

                Decisions are logged before the batch's region writes finish (the consumer's two-stage pipeline),
                so the decision log alone does not say the stores and the stats have caught up."""
                before = stored()
                for seq in seqs:
                    pub.publish(TOPIC, batch_payload(DEVICE, seq, [CNC]), qos=1).wait_for_publish(5)
                wait_until(
                    lambda: len({row[0] for row in _decisions(control, seqs)}) == len(seqs),
                    30,
                    f"decisions of seqs {seqs.start}..{seqs.stop - 1}",
                )

                def shares() -> tuple[int, int]:
                    after = stored()
                    return after[0] - before[0], after[1] - before[1]

                wait_until(lambda: sum(shares()) == len(seqs), 30, f"seqs {seqs.start}..{seqs.stop - 1} stored")
                return shares()

            # 1. Unknown at start: quarantined (metadata only), on whichever replica takes it.
            pub.publish(TOPIC, batch_payload(DEVICE, 1, [CNC]), qos=1).wait_for_publish(5)
            wait_until(
                lambda: (
                    query(control, "SELECT code FROM rejections WHERE device_id = %s", DEVICE) == [("unknown_device",)]
                ),
                20,
                "the unknown device quarantined",
            )

            # 2. Registered through one replica's API: both route the device's next messages.
            assert api.post("/api/v1/sites", headers=auth, json={"site_id": "de-berlin", **BERLIN}).status_code == 201
            answer = api.post(
                "/api/v1/devices", headers=auth, json={"device_id": DEVICE, "site": "de-berlin", "profile": "cnc_mill"}
            )
            assert answer.status_code == 201 and answer.json()["revision"] == 2
            assert revisions()[0] == 2  # the replica that answered has switched already
            wait_until(lambda: revisions() == (2, 2), 10, "both replicas at registry revision 2")
            shares = publish(range(10, 30))
            assert all(s > 0 for s in shares), f"both replicas routed the new device: {shares}"
            assert (
                int(
                    query(
                        regions["eu-central"], "SELECT count(DISTINCT seq) FROM readings WHERE device_id = %s", DEVICE
                    )[0][0]
                )
                == 20
            )
            before = _decisions(control, range(10, 30))
            assert {(c, r, o) for _, c, r, o, _, _ in before} == {
                ("machine", "eu-central", "stored"),
                ("machine", "us-east", "stored"),
                ("personal", "eu-central", "stored"),
                ("personal", "us-east", "denied"),
            }
            assert query(control, "SELECT count(*) FROM rejections WHERE device_id = %s", DEVICE) == [(1,)]

            # 3. Safeguards in force for the US: the badge may now travel, on both replicas.
            answer = api.put(
                "/api/v1/sites/de-berlin", headers=auth, json={**BERLIN, "safeguards": {"US": ["SCC", "TIA"]}}
            )
            assert answer.status_code == 200
            wait_until(lambda: revisions() == (3, 3), 10, "both replicas at registry revision 3")
            shares = publish(range(30, 50))
            assert all(s > 0 for s in shares), f"both replicas routed after the site change: {shares}"
            after = _decisions(control, range(30, 50))
            personal_us = [(o, s) for _, c, r, o, _, s in after if (c, r) == ("personal", "us-east")]
            assert len(personal_us) == 20
            assert all(o != "denied" and s == ["SCC", "TIA"] for o, s in personal_us), personal_us
            assert (
                int(
                    query(
                        regions["us-east"],
                        "SELECT count(DISTINCT seq) FROM readings WHERE device_id = %s"
                        " AND name = 'operator_badge' AND seq >= 30",
                        DEVICE,
                    )[0][0]
                )
                == 20
            )

            # 4. The site's country changes: the next decisions take the new origin.
            answer = api.put("/api/v1/sites/de-berlin", headers=auth, json={**BERLIN, "country": "FR"})
            assert answer.status_code == 200
            wait_until(lambda: revisions() == (4, 4), 10, "both replicas at registry revision 4")
            publish(range(50, 60))
            assert {row[4] for row in _decisions(control, range(50, 60))} == {"FR"}
            assert {row[4] for row in _decisions(control, range(10, 50))} == {"DE"}
    finally:
        pub.loop_stop()
        other.stop()
