"""Registry entries changed through the API, in the control store (migration 0005): SQL only.

Every function takes a connection and runs inside the caller's transaction, so a change, its revision bump
and its audit row commit together. A change first calls :func:`lock_revision`, which takes the lock of the
single revision row: concurrent changes (from any replica) are serialised and commit in revision order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

EntryKind = Literal["site", "device"]
KINDS: tuple[EntryKind, ...] = ("site", "device")


@dataclass(frozen=True)
class RegistryEntry:
    """One API entry: a full site or device specification, or a tombstone (``spec`` is None)."""

    kind: EntryKind
    entry_id: str
    spec: dict[str, Any] | None
    revision: int
    updated_at: datetime
    updated_by: str

    @property
    def decommissioned(self) -> bool:
        return self.spec is None


@dataclass(frozen=True)
class RegistrySnapshot:
    """Every API entry as of ``revision`` (read in one snapshot)."""

    revision: int
    entries: tuple[RegistryEntry, ...]


def current_revision(conn: psycopg.Connection[Any]) -> int:
    """The registry revision (0: no change was ever made through the API)."""
    row = conn.execute("SELECT revision FROM registry_revision").fetchone()
    return int(row[0]) if row else 0


def load_snapshot(conn: psycopg.Connection[Any]) -> RegistrySnapshot:
    """The revision and every entry, consistent with each other (one REPEATABLE READ transaction unless the
    caller already holds a transaction, e.g. after :func:`lock_revision`)."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return _read_snapshot(conn)
    return _read_snapshot(conn)


def _read_snapshot(conn: psycopg.Connection[Any]) -> RegistrySnapshot:
    revision = current_revision(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT kind, entry_id, spec, revision, updated_at, updated_by FROM registry_entries"
            " ORDER BY kind, entry_id"
        ).fetchall()
    return RegistrySnapshot(revision, tuple(RegistryEntry(**row) for row in rows))


def lock_revision(conn: psycopg.Connection[Any]) -> int:
    """Take the registry's write lock (inside a transaction) and return the revision it protects."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        raise RuntimeError("lock_revision needs an open transaction (use conn.transaction())")
    row = conn.execute("SELECT revision FROM registry_revision FOR UPDATE").fetchone()
    if row is None:
        raise RuntimeError("registry_revision has no row: is control migration 0005 applied?")
    return int(row[0])


def write_entry(
    conn: psycopg.Connection[Any], *, kind: EntryKind, entry_id: str, spec: dict[str, Any] | None, actor: str
) -> int:
    """Store ``spec`` (None: a tombstone) as the entry ``(kind, entry_id)``; bump and return the revision.

    Call :func:`lock_revision` first, in the same transaction."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {KINDS}")
    row = conn.execute(
        "UPDATE registry_revision SET revision = revision + 1, changed_at = now() RETURNING revision"
    ).fetchone()
    assert row is not None  # lock_revision checked the row exists
    revision = int(row[0])
    conn.execute(
        "INSERT INTO registry_entries (kind, entry_id, spec, revision, updated_by) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (kind, entry_id) DO UPDATE SET spec = EXCLUDED.spec, revision = EXCLUDED.revision,"
        " updated_at = now(), updated_by = EXCLUDED.updated_by",
        (kind, entry_id, Jsonb(spec) if spec is not None else None, revision, actor),
    )
    return revision
