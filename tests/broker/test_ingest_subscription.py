"""The ingest notices when the broker refuses its subscription (its account is not granted the share group
it asks for): it logs the refusal and reports itself unhealthy, instead of idling while publishers retry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.mosquitto import BrokerAuth, MosquittoServer
from ingest.config import load_settings
from ingest.pipeline.consumer import Consumer
from ingest.pipeline.stats import PipelineStats
from tests.broker.support import Credentials, demo_registry, spec, wait_until


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[MosquittoServer, Credentials]]:
    creds = Credentials(tmp_path / "credentials")
    creds.generate(demo_registry(), spec({"gw-munich": {"site": "de-munich"}}))
    server = MosquittoServer(auth=BrokerAuth(creds.dynsec_file))  # the account's rights; TLS is tested elsewhere
    server.start()
    yield server, creds
    server.cleanup()


@pytest.mark.parametrize(("group", "granted"), [("ingest", True), ("other", False)])
def test_a_refused_subscription_makes_the_ingest_unhealthy(
    setup: tuple[MosquittoServer, Credentials], group: str, granted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server, creds = setup
    settings = load_settings(
        mqtt_port=server.port,
        mqtt_client_id="ingest-1",
        mqtt_username="ingest-1",
        mqtt_password=creds.secret("ingest-1"),
        share_group=group,
        control_dsn="postgresql://unused",
        region_dsns={"eu-central": "postgresql://unused"},
    )
    stats = PipelineStats()
    consumer = Consumer(settings, router=None, stats=stats)  # type: ignore[arg-type]  # no message is routed
    caplog.set_level(logging.ERROR, logger="ingest.consumer")
    consumer.start()
    try:
        assert wait_until(lambda: stats.broker_connected, 10)
        if granted:
            assert wait_until(lambda: stats.subscription_error is None and stats.healthy(), 5)
            assert not caplog.records
        else:
            assert wait_until(lambda: stats.subscription_error is not None, 10)
            assert not stats.healthy()
            assert "$share/other/tele/v1/+/+" in (stats.subscription_error or "")
            assert "ingest-1" in (stats.subscription_error or "")
            assert any("refused the subscription" in r.getMessage() for r in caplog.records)
            assert stats.snapshot()["healthy"] is False
    finally:
        consumer.stop()
