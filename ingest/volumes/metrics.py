"""Prometheus gauges of measured volumes, collected at scrape time from the running tracker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from ingest.volumes.tracker import RouteVolume

RoutesFn = Callable[[], list[RouteVolume]]


class _VolumeCollector:
    def __init__(self) -> None:
        self.source: RoutesFn | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        subjects = GaugeMetricFamily(
            "ingest_transfer_subjects",
            "Distinct data subjects whose personal data went from a site to a region "
            "in a legal window (measured, docs/volumes.md)",
            labels=["site", "region", "counter"],
        )
        ratio = GaugeMetricFamily(
            "ingest_volume_threshold_ratio",
            "Effective volume / the count at which the transfer mechanism changes "
            "(only thresholds at or above the warning ratio)",
            labels=["site", "region", "counter", "limit"],
        )
        warnings = GaugeMetricFamily(
            "ingest_volume_warnings",
            "Thresholds a (site, region) flow is approaching or has reached",
            labels=["status"],
        )
        by_status = {"approaching": 0, "reached": 0}
        routes = self.source() if self.source else []
        for route in routes:
            for counter, value in route.measured.as_volume().items():
                subjects.add_metric([route.site_id, route.region, counter], value)
            for w in route.warnings:
                ratio.add_metric([route.site_id, route.region, w.counter, str(w.limit)], w.ratio)
                by_status[w.status] += 1
        for status, n in by_status.items():
            warnings.add_metric([status], n)
        yield subjects
        yield ratio
        yield warnings


COLLECTOR = _VolumeCollector()
REGISTRY.register(COLLECTOR)


def publish(source: RoutesFn | None) -> None:
    """Make ``source`` (the running service's routes) what the gauges show."""
    COLLECTOR.source = source
