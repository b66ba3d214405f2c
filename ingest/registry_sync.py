"""The effective registry of one ingest replica, and how it follows changes made through the API.

The YAML file (``INGEST_REGISTRY_FILE``) is the baseline shipped with a deployment: regions and profiles
only come from it. Sites and devices created, updated or decommissioned through the API live in the
control store (``ingest.store.registry_store``) with a registry revision that every change bumps.
The effective registry is the YAML overlaid with those entries (:func:`ingest.registry.overlay`).

Like :mod:`ingest.policy_runtime` does for the policy, :class:`RegistrySync` swaps one immutable
:class:`EffectiveRegistry` reference and tells its listeners (the router, which drops the policy inputs it
memoised from the old site definitions, and the API's runtime). A background thread polls the revision
every ``INGEST_REGISTRY_REFRESH_S`` seconds, so every replica follows a change made on any of them; the
replica that made the change refreshes at once. A revision that cannot be loaded (control store down, or
entries that no longer fit a changed YAML file) is logged and the running registry stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from ingest.errors import RegistryError, StoreUnavailableError
from ingest.registry import EntrySpec, Registry, overlay
from ingest.store import registry_store
from ingest.store.connection import StoreConnection
from ingest.store.registry_store import EntryKind, RegistryEntry, RegistrySnapshot

log = logging.getLogger("ingest.registry")

Source = Literal["file", "api"]


@dataclass(frozen=True)
class EffectiveRegistry:
    """One registry revision: never mutated, replaced as a whole."""

    registry: Registry
    revision: int
    entries: Mapping[tuple[EntryKind, str], RegistryEntry] = field(default_factory=dict)
    """The API entries (tombstones included) by (kind, id)."""

    def source(self, kind: EntryKind, entry_id: str) -> Source:
        """Where an entry of the effective registry comes from: the API or the YAML file."""
        entry = self.entries.get((kind, entry_id))
        return "api" if entry is not None and entry.spec is not None else "file"

    def entry(self, kind: EntryKind, entry_id: str) -> RegistryEntry | None:
        return self.entries.get((kind, entry_id))


def effective(base: Registry, snapshot: RegistrySnapshot) -> EffectiveRegistry:
    """The YAML registry ``base`` overlaid with a snapshot of the API entries (RegistryEntryError if invalid)."""
    specs: dict[EntryKind, dict[str, EntrySpec]] = {"site": {}, "device": {}}
    for entry in snapshot.entries:
        specs[entry.kind][entry.entry_id] = entry.spec
    registry = overlay(base, sites=specs["site"], devices=specs["device"])
    return EffectiveRegistry(registry, snapshot.revision, {(e.kind, e.entry_id): e for e in snapshot.entries})


class RegistrySync:
    """Owns the effective registry of one replica and keeps it at the control store's revision."""

    def __init__(self, *, base: Registry, control_dsn: str, refresh_s: float = 2.0) -> None:
        self.base = base
        self.refresh_s = refresh_s
        self._store = StoreConnection("control", control_dsn)
        self._current = EffectiveRegistry(base, -1)  # -1: not loaded yet (revision 0 = no API change ever)
        self._listeners: list[Callable[[Registry], None]] = []
        self._lock = threading.Lock()  # one load at a time (poller and API thread)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_revision: int | None = None  # a revision whose entries do not fit the YAML

    @property
    def current(self) -> EffectiveRegistry:
        return self._current

    @property
    def registry(self) -> Registry:
        return self._current.registry

    @property
    def revision(self) -> int:
        return self._current.revision

    def on_change(self, listener: Callable[[Registry], None]) -> None:
        """Call ``listener(new_registry)`` after every swap (not for the current one)."""
        self._listeners.append(listener)

    def load(self) -> EffectiveRegistry:
        """Load the effective registry now (at start). Raises StoreUnavailableError or RegistryEntryError."""
        self.refresh(force=True)
        return self._current

    def refresh(self, *, force: bool = False) -> bool:
        """Swap in the control store's revision if it is newer than the running one; True if swapped.

        Raises StoreUnavailableError (control store unreachable) or RegistryEntryError (the entries do not
        fit the YAML registry); the running registry stays in both cases."""
        with self._lock:
            try:
                conn = self._store.get()
                if not force:
                    revision = registry_store.current_revision(conn)
                    conn.rollback()  # end the implicit transaction of the read
                    if revision <= self._current.revision or revision == self._failed_revision:
                        return False
                snapshot = registry_store.load_snapshot(conn)
            except psycopg.Error as exc:
                raise self._store.error(exc) from None
            if not force and snapshot.revision <= self._current.revision:
                return False
            try:
                state = effective(self.base, snapshot)
            except RegistryError:
                self._failed_revision = snapshot.revision  # the YAML does not change at run time: skip it
                raise
            self._swap(state)
            return True

    def _swap(self, state: EffectiveRegistry) -> None:
        previous, self._current = self._current, state
        if previous.revision >= 0:
            log.info(
                "registry revision %d -> %d (%d sites, %d devices)",
                previous.revision,
                state.revision,
                len(state.registry.sites),
                len(state.registry.devices),
            )
        for listener in self._listeners:
            listener(state.registry)

    # --- the background refresher -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="registry-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._store.close()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.poll_once()

    def poll_once(self) -> None:
        """One poll of the refresher: errors are logged (once per failing revision), never raised."""
        try:
            self.refresh()
        except StoreUnavailableError as exc:
            log.warning("registry refresh: %s; keeping revision %d", exc, self._current.revision)
        except RegistryError as exc:  # raised once per failing revision (see refresh)
            log.error("registry revision does not load: %s; keeping revision %d", exc, self._current.revision)

    def describe(self) -> dict[str, Any]:
        return {"revision": self.revision, "sites": len(self.registry.sites), "devices": len(self.registry.devices)}
