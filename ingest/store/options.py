"""Storage settings of the region stores (chunking, compression, retention, partitions, maintenance).

They come from ``ingest.config.IngestSettings`` (``INGEST_CHUNK_INTERVAL``, ``INGEST_COMPRESS_AFTER``,
``INGEST_RETENTION_DAYS``...) and are used by both storage paths: TimescaleDB policies
(:mod:`ingest.store.timescale`) and the plain PostgreSQL partitions and rollups
(:mod:`ingest.store.partitions`, :mod:`ingest.store.maintenance`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator

if TYPE_CHECKING:
    from ingest.config import IngestSettings

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_duration(value: Any) -> timedelta:
    """``timedelta`` from ``"1 day"``, ``"12h"``, ``"30 minutes"``, ``"2w"``, a number of seconds, or a timedelta.

    Raises ValueError naming the accepted forms (pydantic reports it against the setting).
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            result = timedelta(seconds=float(text))
        else:
            match = _DURATION.match(text)
            if match is None or match.group(2) not in _UNITS:
                raise ValueError(f"{value!r} is not a duration: use e.g. '1 day', '12 hours', '30m', '7d' or seconds")
            result = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ValueError(f"{value!r} is not a duration")
    if result <= timedelta(0):
        raise ValueError(f"{value!r}: the duration must be positive")
    return result


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A settings field type: accepts ``"1 day"``, ``"12h"``, ``"90s"``, seconds, or a timedelta."""


@dataclass(frozen=True)
class StoreOptions:
    """How region stores are laid out and maintained (defaults = the settings' defaults)."""

    chunk_interval: timedelta = timedelta(days=1)
    """TimescaleDB chunk interval of ``readings`` (plain PostgreSQL partitions are always daily)."""
    compress_after: timedelta = timedelta(days=7)
    """TimescaleDB compresses chunks older than this (no compression on plain PostgreSQL)."""
    retention_days: int = 90
    """Raw readings older than this many days are dropped (whole days/chunks); 0 keeps them."""
    rollup_retention_days: int = 0
    """Rollup rows (1 min / 1 h) older than this are dropped; 0 keeps them."""
    partitions_ahead: int = 7
    """Plain PostgreSQL: daily partitions created ahead of today."""
    maintenance_interval: timedelta = timedelta(hours=1)
    """How often the ingest's maintenance thread runs (plain PostgreSQL)."""
    rollup_refresh_window: timedelta = timedelta(days=7)
    """TimescaleDB: how far back the continuous-aggregate refresh policies look for late data."""
    late_refresh_interval: timedelta = timedelta(seconds=60)
    """TimescaleDB: how often the maintenance refreshes the recorded ranges of older late data."""

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> StoreOptions:
        return cls(
            chunk_interval=settings.chunk_interval,
            compress_after=settings.compress_after,
            retention_days=settings.retention_days,
            rollup_retention_days=settings.rollup_retention_days,
            partitions_ahead=settings.partitions_ahead,
            maintenance_interval=timedelta(seconds=settings.maintenance_interval_s),
            rollup_refresh_window=settings.rollup_refresh_window,
            late_refresh_interval=timedelta(seconds=settings.late_refresh_interval_s),
        )

    @property
    def retention(self) -> timedelta | None:
        return timedelta(days=self.retention_days) if self.retention_days > 0 else None

    @property
    def rollup_retention(self) -> timedelta | None:
        return timedelta(days=self.rollup_retention_days) if self.rollup_retention_days > 0 else None
