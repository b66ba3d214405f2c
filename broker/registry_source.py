"""Where the credentials tool gets its registry: the YAML file alone, or the effective registry.

Devices and sites registered through the ingest API live in the control database, overlaid on the YAML
file (docs/registry.md). With a control DSN the tool loads the same effective registry an ingest replica
runs (:class:`ingest.registry_sync.RegistrySync`, one snapshot at the current revision), so a device
registered through the API gets its broker identity at the next generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.errors import BrokerConfigError
from ingest.errors import RegistryError, StoreUnavailableError
from ingest.registry import Registry, load_registry
from ingest.registry_sync import RegistrySync

__all__ = ["LoadedRegistry", "load_effective_registry"]


@dataclass(frozen=True, slots=True)
class LoadedRegistry:
    registry: Registry
    revision: int | None  # the control database's registry revision; None: the YAML file alone
    description: str  # where it came from (no DSN: it may hold a password)


def load_effective_registry(path: Path, control_dsn: str | None = None) -> LoadedRegistry:
    """The YAML registry at ``path``, overlaid with the control database's API entries when ``control_dsn``.

    Raises RegistryError (the YAML file, naming it) or BrokerConfigError (the control database cannot be
    read, or its entries do not fit the file)."""
    base = load_registry(path)
    if not control_dsn:
        return LoadedRegistry(base, None, f"from {path}")
    sync = RegistrySync(base=base, control_dsn=control_dsn)
    try:
        state = sync.load()
    except StoreUnavailableError as exc:
        raise BrokerConfigError(f"--control-dsn: cannot read the registry entries: {exc}") from None
    except RegistryError as exc:
        raise BrokerConfigError(f"--control-dsn: the API entries do not fit {path}: {exc}") from None
    finally:
        sync.stop()
    return LoadedRegistry(
        state.registry, state.revision, f"from {path} overlaid with the control database's API entries"
    )
