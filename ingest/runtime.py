"""What the API needs from the running service: settings, registry, pools, policy and pipeline status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from psycopg_pool import ConnectionPool

from ingest.config import IngestSettings
from ingest.registry import Registry

if TYPE_CHECKING:
    from ingest.quarantine.service import QuarantineService
    from ingest.registry_sync import RegistrySync


class RevisionSource(Protocol):
    @property
    def revision(self) -> str: ...


class PipelineStatus(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """Counters and health of the consumer: see ingest.pipeline.stats.PipelineStats.snapshot."""
        ...

    def healthy(self) -> bool: ...


@dataclass
class Runtime:
    settings: IngestSettings
    registry: Registry
    control: ConnectionPool
    regions: dict[str, ConnectionPool]
    policy: RevisionSource
    pipeline: PipelineStatus | None = None
    quarantine: QuarantineService | None = None  # when the pipeline runs in this process
    registry_sync: RegistrySync | None = None  # follows API registry changes; sets ``registry`` on each swap
    extras: dict[str, Any] = field(default_factory=dict)
