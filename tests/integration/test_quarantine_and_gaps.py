"""Lawful quarantine with release after a policy change, and sequence gap detection."""

from __future__ import annotations

from pathlib import Path

import psycopg

from devstack import MosquittoServer
from ingest.auth.roles import Role
from ingest.store import users
from tests.integration.ingest_harness import (
    admin_headers,
    batch_payload,
    publisher,
    query,
    running_ingest,
    wait_until,
)

PRESS = {
    "barrel_temp_c": 220.0,
    "injection_pressure_bar": 900.0,
    "cycle_time_s": 30.0,
    "vibration_mm_s": 2.0,
    "power_kw": 20.0,
    "fault_code": 0,
    "operator_badge": "VN-B1",
}
CNC = {
    "spindle_speed_rpm": 1200.0,
    "spindle_temp_c": 41.5,
    "vibration_mm_s": 1.2,
    "power_kw": 7.5,
    "tool_wear_pct": 12.0,
    "fault_code": 0,
    "operator_badge": "DE-B1001",
}
REPO = Path(__file__).resolve().parents[2]


def compliance_headers(control: str, name: str) -> dict[str, str]:
    """A compliance officer scoped to every region, with a token."""
    with psycopg.connect(control) as conn, conn.transaction():
        users.create_user(conn, name=name, roles=[Role.COMPLIANCE], regions=None, actor="test-setup")
        _, issued = users.create_token(conn, user=name, actor="test-setup")
    return {"Authorization": f"Bearer {issued.text}"}


def test_gaps_open_and_close_when_filled(mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]]) -> None:
    control, regions = databases
    with running_ingest(mqtt_broker, control, regions) as (service, api):
        pub = publisher(mqtt_broker)
        topic = "tele/v1/de-munich/de-munich-cnc-01"
        for seq in (1, 2, 5, 6, 9):
            pub.publish(topic, batch_payload("de-munich-cnc-01", seq, [CNC]), qos=1).wait_for_publish(5)
        wait_until(lambda: service.stats.snapshot()["messages"]["stored"] == 5, 20, "5 batches stored")

        def open_gaps() -> list[tuple[int, int]]:
            gaps = api.get("/api/v1/gaps", params={"device_id": "de-munich-cnc-01"}).json()
            return sorted((g["first_missing"], g["last_missing"]) for g in gaps["items"])

        # The holes become gaps once the batches after them are INGEST_SEQ_GAP_GRACE_S old (2 s).
        wait_until(lambda: open_gaps() != [], 20, "gaps opened after the grace period")
        assert open_gaps() == [(3, 4), (7, 8)]
        # A replay fills 3, 4 and 7: the first gap closes, the second shrinks to 8.
        replays = {seq: batch_payload("de-munich-cnc-01", seq, [CNC]) for seq in (3, 7, 4)}
        for seq in (3, 7, 4, 4):  # 4 twice, the same bytes (a redelivery): a duplicate changes nothing
            pub.publish(topic, replays[seq], qos=1).wait_for_publish(5)
        wait_until(lambda: service.stats.snapshot()["messages"]["stored"] == 9, 20, "replays stored")
        gaps = api.get("/api/v1/gaps", params={"device_id": "de-munich-cnc-01", "state": "all"}).json()
        assert gaps["open"] == 1
        spans = sorted((g["first_missing"], g["last_missing"], g["closed_at"] is None) for g in gaps["items"])
        assert (8, 8, True) in spans and any(not is_open for *_, is_open in spans)
        progress = query(
            control, "SELECT last_seq, batches, readings FROM device_progress WHERE device_id = 'de-munich-cnc-01'"
        )
        assert progress == [(9, 8, 8)]  # the duplicate of 4 is not counted
        pub.loop_stop()


def test_quarantine_keeps_payloads_only_where_they_may_live(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    control, regions = databases
    # Vietnam's transfer impact assessment not filed: remove the site's safeguard from a registry copy.
    registry = tmp_path / "registry.yaml"
    text = (REPO / "deploy/local/registry.yaml").read_text()
    registry.write_text(text.replace("    safeguards:\n      SG: [VN_TIA_FILED]\n", ""))
    with running_ingest(mqtt_broker, control, regions, registry_file=str(registry)) as (service, api):
        pub = publisher(mqtt_broker)
        pub.publish(
            "tele/v1/vn-hanoi/vn-hanoi-press-01", batch_payload("vn-hanoi-press-01", 1, [PRESS]), qos=1
        ).wait_for_publish(5)
        # A malformed payload from a DE device: held in eu-central (DE data may live in DE).
        pub.publish(
            "tele/v1/de-munich/de-munich-cnc-01", b'{"v": 1, "device_id": "de-munich-cnc-01"', qos=1
        ).wait_for_publish(5)
        wait_until(lambda: service.stats.snapshot()["messages"]["received"] == 2, 20, "received")
        wait_until(lambda: service.stats.snapshot()["inflight"] == 0, 20, "committed")
        items = api.get("/api/v1/quarantine").json()
        by_code = {i["code"]: i for i in items["items"]}
        # VN personal data may go nowhere we have a store: metadata only, the payload is discarded.
        vn = by_code["no_lawful_region"]
        assert (vn["state"], vn["payload_region"], vn["origin_country"]) == ("discarded", None, "VN")
        # VN machine data went to the home region and the analytics region; the badge is nowhere.
        for region in regions.values():
            assert query(region, "SELECT count(*) FROM readings WHERE name = 'operator_badge'") == [(0,)]
        assert query(
            regions["ap-southeast"], "SELECT count(*) FROM readings WHERE device_id = 'vn-hanoi-press-01'"
        ) == [(6,)]
        bad = by_code["malformed"]
        assert (bad["state"], bad["payload_region"]) == ("held", "eu-central")
        detail = api.get(f"/api/v1/quarantine/{bad['quarantine_id']}").json()
        assert detail["payload"].startswith('{"v": 1')
        # Release of something still invalid is refused and it stays held.
        alice = compliance_headers(control, "alice")
        refused = api.post(f"/api/v1/quarantine/{bad['quarantine_id']}/release", headers=alice)
        assert refused.status_code == 409 and "malformed" in refused.json()["detail"]
        assert (
            api.post(f"/api/v1/quarantine/{vn['quarantine_id']}/release", headers=alice).status_code == 409
        )  # nothing held to release
        assert (
            api.post(f"/api/v1/quarantine/{bad['quarantine_id']}/release", headers={"Authorization": ""}).status_code
            == 401
        )  # nobody
        admin = admin_headers(control)  # every role and region: authorised, and still refused (409)
        assert api.post(f"/api/v1/quarantine/{bad['quarantine_id']}/release", headers=admin).status_code == 409
        pub.loop_stop()


def test_release_routes_held_data_once(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """An undeclared field quarantines the message (held at home); after the registry declares the field
    a release stores it, once."""
    control, regions = databases
    registry = tmp_path / "registry.yaml"
    text = (REPO / "deploy/local/registry.yaml").read_text()
    registry.write_text(text)
    with running_ingest(mqtt_broker, control, regions, registry_file=str(registry)) as (service, api):
        pub = publisher(mqtt_broker)
        pub.publish(
            "tele/v1/de-munich/de-munich-cnc-01",
            batch_payload("de-munich-cnc-01", 1, [{**CNC, "coolant_flow_l_min": 3.5}]),
            qos=1,
        ).wait_for_publish(5)
        wait_until(
            lambda: service.stats.snapshot()["inflight"] == 0 and service.stats.snapshot()["messages"]["received"] == 1,
            20,
            "committed",
        )
        pub.loop_stop()
        item = api.get("/api/v1/quarantine", params={"code": "undeclared_field"}).json()["items"][0]
        assert item["state"] == "held"
    # The operator declares the field; the service restarts with the new registry.
    declared = text.replace(
        '      operator_badge:    {category: personal, type: text, description: "Badge id of the logged-in operator"}',
        "      operator_badge:    {category: personal, type: text}\n"
        "      coolant_flow_l_min: {category: machine, unit: l/min}",
    )
    assert declared != text
    registry.write_text(declared)
    with running_ingest(mqtt_broker, control, regions, registry_file=str(registry)) as (service, api):
        bob = compliance_headers(control, "bob")
        released = api.post(f"/api/v1/quarantine/{item['quarantine_id']}/release", headers=bob)
        assert released.status_code == 200, released.text
        body = released.json()
        assert body["rows"] == {"eu-central": 8, "us-east": 7}  # badge stays home; coolant is machine data
        again = api.post(f"/api/v1/quarantine/{item['quarantine_id']}/release", headers=bob)
        assert again.status_code == 409 and "released" in again.json()["detail"]
        after = api.get(f"/api/v1/quarantine/{item['quarantine_id']}").json()
        assert (after["state"], after["released_by"], after["payload"]) == ("released", "bob", None)
        audited = query(control, "SELECT actor, target, regions FROM audit_log WHERE action = 'quarantine.release'")
        assert audited == [("bob", f"quarantine:{item['quarantine_id']}", ["eu-central", "us-east"])]
        assert query(regions["eu-central"], "SELECT num FROM readings WHERE name = 'coolant_flow_l_min'") == [(3.5,)]
        assert query(regions["eu-central"], "SELECT count(*) FROM quarantine_payloads") == [(0,)]
        # The release logged its decisions: coolant and the other machine fields may travel, the badge may not.
        reported = {(d["category"], d["region"], d["outcome"]) for d in body["decisions"]}
        assert reported == {
            ("machine", "eu-central", "stored"),
            ("machine", "us-east", "stored"),
            ("personal", "eu-central", "stored"),
            ("personal", "us-east", "denied"),
        }


def test_quarantine_lifecycle_release_after_an_api_registry_change_dismiss_expire_and_audit(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]]
) -> None:
    """Without a restart: a device whose firmware now sends press fields is quarantined (undeclared_field);
    release is refused (and audited) until the operator moves the device to the press profile through the API,
    then it succeeds. A malformed item cannot be released (says why) but can be dismissed with a reason; a held
    item past the retention expires; viewing a payload is audited; the open count goes down to zero."""
    import uuid
    from datetime import UTC, datetime, timedelta

    control, regions = databases
    device = "fr-lyon-cnc-01"
    with running_ingest(mqtt_broker, control, regions, registry_refresh_s=0.2) as (service, api):
        pub = publisher(mqtt_broker)
        reflashed = {"barrel_temp_c": 221.0, "power_kw": 19.5, "fault_code": 0}  # barrel_temp_c: not a cnc field
        pub.publish(f"tele/v1/fr-lyon/{device}", batch_payload(device, 1, [reflashed]), qos=1).wait_for_publish(5)
        pub.publish("tele/v1/de-munich/de-munich-cnc-01", b'{"v": 1, "seq": ', qos=1).wait_for_publish(5)
        pub.publish("tele/v1/de-munich/de-munich-cnc-01", b'{"v": 1, "seq": 2', qos=1).wait_for_publish(5)
        wait_until(
            lambda: service.stats.snapshot()["messages"]["received"] == 3 and service.stats.snapshot()["inflight"] == 0,
            20,
            "committed",
        )
        pub.loop_stop()
        page = api.get("/api/v1/quarantine").json()
        assert page["counts"]["open"] == page["counts"]["held"] == 3
        undeclared = next(i for i in page["items"] if i["code"] == "undeclared_field")
        malformed = [i for i in page["items"] if i["code"] == "malformed"]
        assert undeclared["releasable"] and "profile" in undeclared["release_note"]
        assert not malformed[0]["releasable"] and "cannot be released" in malformed[0]["release_note"]
        alice = compliance_headers(control, "alice")
        uid = undeclared["quarantine_id"]

        refused = api.post(f"/api/v1/quarantine/{uid}/release", headers=alice)
        assert refused.status_code == 409
        assert "still rejected" in refused.json()["detail"] and "profile" in refused.json()["detail"]
        never = api.post(f"/api/v1/quarantine/{malformed[0]['quarantine_id']}/release", headers=alice)
        assert never.status_code == 409 and "malformed items cannot be released" in never.json()["detail"]
        assert query(
            control,
            "SELECT actor, target, details->>'code' FROM audit_log"
            " WHERE action = 'quarantine.release_refused' ORDER BY id",
        ) == [
            ("alice", f"quarantine:{uid}", "undeclared_field"),
            ("alice", f"quarantine:{malformed[0]['quarantine_id']}", "malformed"),
        ]

        # The registry change, through the API: the device is a press now. No restart.
        moved = api.put(f"/api/v1/devices/{device}", json={"site": "fr-lyon", "profile": "injection_press"})
        assert moved.status_code == 200, moved.text
        wait_until(
            lambda: service.router.registry.devices[device].profile == "injection_press",
            10,
            "the router sees the new profile",
        )
        released = api.post(f"/api/v1/quarantine/{uid}/release", headers=alice)
        assert released.status_code == 200, released.text
        assert released.json()["rows"]["eu-central"] == 3
        assert query(
            regions["eu-central"], "SELECT num FROM readings WHERE device_id = %s AND name = 'barrel_temp_c'", device
        ) == [(221.0,)]

        # Viewing a payload is audited; dismissing closes with a reason and deletes the payload.
        mid = malformed[0]["quarantine_id"]
        assert api.get(f"/api/v1/quarantine/{mid}", headers=alice).json()["payload"].startswith('{"v": 1')
        assert query(
            control, "SELECT actor FROM audit_log WHERE action = 'quarantine.view' AND target = %s", f"quarantine:{mid}"
        ) == [("alice",)]
        assert api.post(f"/api/v1/quarantine/{mid}/dismiss", headers=alice, json={"reason": ""}).status_code == 422
        dismissed = api.post(
            f"/api/v1/quarantine/{mid}/dismiss",
            headers=alice,
            json={"reason": "truncated by a gateway bug, fixed in firmware 2.1"},
        )
        assert dismissed.status_code == 200, dismissed.text
        assert (dismissed.json()["state"], dismissed.json()["closed_by"], dismissed.json()["payload_deleted"]) == (
            "dismissed",
            "alice",
            True,
        )
        assert api.post(f"/api/v1/quarantine/{mid}/dismiss", headers=alice, json={"reason": "again"}).status_code == 409
        assert query(control, "SELECT details->>'reason' FROM audit_log WHERE action = 'quarantine.dismiss'") == [
            ("truncated by a gateway bug, fixed in firmware 2.1",)
        ]

        # Retention: the last held item, as if received 31 days ago, expires.
        last = malformed[1]["quarantine_id"]
        with psycopg.connect(control) as conn:
            conn.execute(
                "UPDATE rejections SET received_at = now() - interval '31 days' WHERE quarantine_id = %s", (last,)
            )
        assert service.runtime.quarantine is not None
        assert service.runtime.quarantine.expire(datetime.now(UTC), retention=timedelta(days=30)) == 1
        assert service.runtime.quarantine.expire(datetime.now(UTC), retention=timedelta(days=30)) == 0
        assert query(control, "SELECT state, closed_by FROM rejections WHERE quarantine_id = %s", uuid.UUID(last)) == [
            ("expired", "retention")
        ]
        assert query(regions["eu-central"], "SELECT count(*) FROM quarantine_payloads") == [(0,)]
        counts = api.get("/api/v1/quarantine").json()["counts"]
        assert (counts["open"], counts.get("released"), counts.get("dismissed"), counts.get("expired")) == (0, 1, 1, 1)
        closed = api.get("/api/v1/quarantine", params={"state": "closed"}).json()
        assert closed["total"] == 3
