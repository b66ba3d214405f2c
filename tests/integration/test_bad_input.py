"""Bad input: each gets a counted, logged outcome with a reason; none crashes the ingest; valid traffic
around it is stored."""

from __future__ import annotations

import json
from collections import Counter

from devstack import MosquittoServer
from tests.integration.ingest_harness import batch_payload, publisher, query, running_ingest, wait_until

GOOD = {
    "spindle_speed_rpm": 1200.0,
    "spindle_temp_c": 41.5,
    "vibration_mm_s": 1.2,
    "power_kw": 7.5,
    "tool_wear_pct": 12.0,
    "fault_code": 0,
    "operator_badge": "DE-B1001",
}


def test_bad_input_is_counted_and_valid_traffic_is_stored(
    mqtt_broker: MosquittoServer, databases: tuple[str, dict[str, str]]
) -> None:
    control, regions = databases
    with running_ingest(mqtt_broker, control, regions, max_message_bytes=64 * 1024) as (service, api):
        pub = publisher(mqtt_broker)
        topic = "tele/v1/de-munich/de-munich-cnc-01"
        sent = [
            (topic, batch_payload("de-munich-cnc-01", 1, [GOOD])),  # valid
            (topic, b"{not json"),  # malformed
            (topic, batch_payload("de-munich-cnc-01", 2, [{"power_kw": "NaN?"}])[:-2]),  # truncated
            ("tele/v1/de-munich/ghost-01", batch_payload("ghost-01", 1, [GOOD])),  # unknown device
            (topic, batch_payload("de-munich-cnc-01", 3, [GOOD], origin={"country": "US"})),  # spoofed origin
            ("tele/v1/us-detroit/de-munich-cnc-01", batch_payload("de-munich-cnc-01", 4, [GOOD])),  # wrong site
            (topic, batch_payload("de-munich-cnc-01", 5, [GOOD] * 400)),  # oversized (> 64 KiB)
            (topic, batch_payload("de-munich-cnc-01", 6, [{**GOOD, "secret_sauce": 1.0}])),  # undeclared field
            (topic, batch_payload("de-munich-cnc-01", 7, [GOOD, GOOD])),  # valid
        ]
        assert len(sent[6][1]) > 64 * 1024
        for t, payload in sent:
            pub.publish(t, payload, qos=1).wait_for_publish(5)
        wait_until(lambda: service.stats.snapshot()["messages"]["received"] >= len(sent), 20, "all received")
        wait_until(lambda: service.stats.snapshot()["inflight"] == 0, 20, "all committed and acked")
        pub.loop_stop()

        snap = service.stats.snapshot()
        assert snap["rejections"] == {
            "malformed": 2,
            "unknown_device": 1,
            "origin_mismatch": 1,
            "site_mismatch": 1,
            "oversized": 1,
            "undeclared_field": 1,
        }
        assert snap["messages"] == {"received": 9, "stored": 3, "rejected": 6}

        rows = query(
            control,
            "SELECT code, device_id, seq, detail, payload_kept, state, payload_region, quarantine_id"
            " FROM rejections ORDER BY id",
        )
        assert Counter(r[0] for r in rows) == Counter(snap["rejections"])
        by_code = {r[0]: r for r in rows}
        assert any("not JSON" in r[3] for r in rows if r[0] == "malformed")
        assert "'ghost-01' is not in the registry" in by_code["unknown_device"][3]
        assert "country='US'" in by_code["origin_mismatch"][3] and "country='DE'" in by_code["origin_mismatch"][3]
        assert "exceeds the limit of 65536 bytes" in by_code["oversized"][3]
        assert "secret_sauce" in by_code["undeclared_field"][3]
        # Quarantine obeys residency: payloads of a known DE device are held in eu-central (DE data may
        # live in DE); unknown or disputed origins and oversized payloads keep metadata only.
        held = {(r[0], r[5], r[6]) for r in rows if r[4]}
        assert held == {("malformed", "held", "eu-central"), ("undeclared_field", "held", "eu-central")}
        for code in ("unknown_device", "origin_mismatch", "site_mismatch", "oversized"):
            assert (by_code[code][4], by_code[code][5], by_code[code][6]) == (False, "discarded", None)
        kept = query(regions["eu-central"], "SELECT quarantine_id FROM quarantine_payloads")
        assert {k[0] for k in kept} == {r[7] for r in rows if r[4]}
        for other in ("us-east", "cn-north", "ap-southeast"):
            assert query(regions[other], "SELECT count(*) FROM quarantine_payloads") == [(0,)]

        # The valid traffic around the bad input is stored: seqs 1, 6 (declared fields only) and 7.
        eu = query(
            regions["eu-central"],
            "SELECT seq, count(DISTINCT idx), count(*) FROM readings "
            "WHERE device_id = 'de-munich-cnc-01' GROUP BY seq ORDER BY seq",
        )
        assert eu == [(1, 1, 7), (6, 1, 7), (7, 2, 14)]
        assert query(regions["eu-central"], "SELECT count(*) FROM readings WHERE name = 'secret_sauce'") == [(0,)]

        # The API reports the same, and the service is still healthy.
        assert api.get("/api/v1/health").status_code == 200
        listed = api.get("/api/v1/rejections", params={"limit": 50}).json()
        assert json.dumps(listed).count("unknown_device") >= 1
