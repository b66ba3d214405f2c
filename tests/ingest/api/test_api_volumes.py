"""GET /api/v1/volumes and the Prometheus gauges of measured volumes."""

from __future__ import annotations

from datetime import date

from ingest.auth.roles import Role
from ingest.volumes.counter import subject_key
from ingest.volumes.metrics import publish
from ingest.volumes.tracker import VolumeTracker
from ingest.volumes.warnings import PolicyThresholds
from policy import DEFAULT_POLICY_DIR

TODAY = date(2026, 11, 22)


def test_volumes_without_a_tracker(client, runtime):
    runtime.extras.pop("volumes", None)
    assert client.get("/api/v1/volumes").json() == {"measuring": False, "routes": [], "warnings": 0}


def test_volumes_per_route_with_warnings_and_metrics(client, runtime, anonymous, token_for):
    tracker = VolumeTracker(None, thresholds=PolicyThresholds(DEFAULT_POLICY_DIR), today=lambda: TODAY)
    # The demo's Hanoi plant sends to ap-southeast (SG): 85,000 people is 85 % of Vietnam's 'important' limit.
    tracker._counter.merge_rows(
        ("vn-hanoi", "ap-southeast", subject_key("vn-hanoi", i), TODAY, None) for i in range(85_000)
    )
    runtime.extras["volumes"] = tracker
    try:
        body = client.get("/api/v1/volumes").json()
        assert body["measuring"] is True and body["warn_ratio"] == 0.8
        routes = {(r["site_id"], r["region"]): r for r in body["routes"]}
        assert ("de-munich", "eu-central") not in routes  # domestic: no transfer
        hanoi = routes[("vn-hanoi", "ap-southeast")]
        assert hanoi["origin"] == "VN" and hanoi["destination"] == "SG"
        assert hanoi["measured"]["individuals_12m"] == 85_000
        assert hanoi["effective"]["individuals_12m"] == 85_000
        assert hanoi["warnings"] == [
            {
                "law": "VN Decision 20/2025/QD-TTg",
                "counter": "individuals_12m",
                "value": 85_000,
                "limit": 100_000,
                "ratio": 0.85,
                "status": "approaching",
                "becomes": "important data",
            }
        ]
        assert body["warnings"] == 1
        assert client.get("/api/v1/volumes", headers=token_for(Role.OPERATOR)).status_code == 403

        publish(
            lambda: tracker.routes(runtime.registry.sites, runtime.registry.regions, runtime.registry.candidate_regions)
        )
        metrics = anonymous.get("/api/v1/metrics").text
        assert (
            'ingest_transfer_subjects{counter="individuals_12m",region="ap-southeast",site="vn-hanoi"} 85000.0'
            in metrics
        )
        assert 'ingest_volume_warnings{status="approaching"} 1.0' in metrics
        assert (
            'ingest_volume_threshold_ratio{counter="individuals_12m",limit="100000",region="ap-southeast",'
            'site="vn-hanoi"} 0.85'
        ) in metrics
    finally:
        publish(None)
        runtime.extras.pop("volumes", None)
