"""Per-device monotonic batch sequence numbers that survive restarts and power loss.

The last number handed out for each device is committed to SQLite (WAL journal,
``synchronous=FULL``) *before* the number is used, so after any restart the next number is greater
than every number ever handed out. Numbers start at 1. A lock file keeps a second agent from using
the same state directory.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edge_agent.errors import StateError
from edge_agent.statelock import LOCK_NAME, StateLock, ensure_state_dir

__all__ = ["DB_NAME", "LOCK_NAME", "SequenceStore", "adopt_legacy_db"]

DB_NAME = "state.sqlite3"
LEGACY_DB_NAME = "sequence.sqlite3"  # before the disk queue, the same table lived here


def adopt_legacy_db(state_dir: Path) -> None:
    """Rename ``sequence.sqlite3`` (and its WAL files) to ``state.sqlite3`` once; call with the lock held."""
    new, old = state_dir / DB_NAME, state_dir / LEGACY_DB_NAME
    if new.exists() or not old.exists():
        return
    for suffix in ("-wal", "-shm", ""):  # the main file last: its presence marks the move as done
        src = state_dir / f"{LEGACY_DB_NAME}{suffix}"
        if src.exists():
            src.rename(state_dir / f"{DB_NAME}{suffix}")


class SequenceStore:
    """Hands out per-device batch sequence numbers, persisted in ``state_dir``."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = ensure_state_dir(Path(state_dir))
        self._lock = StateLock(self.state_dir)
        self._mutex = threading.Lock()
        try:
            adopt_legacy_db(self.state_dir)
            self._db = sqlite3.connect(self.state_dir / DB_NAME, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS device_seq (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)"
            )
        except (sqlite3.Error, OSError) as exc:
            self._lock.release()
            raise StateError(self.state_dir / DB_NAME, f"cannot open: {exc}") from None

    def next(self, device_id: str) -> int:
        """Commit and return the next sequence number of ``device_id``."""
        with self._mutex:
            try:
                row = self._db.execute(
                    "INSERT INTO device_seq (device_id, last_seq) VALUES (?, 1) "
                    "ON CONFLICT (device_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
                    (device_id,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise StateError(self.state_dir / DB_NAME, f"cannot persist a sequence number: {exc}") from None
        return int(row[0])

    def last(self, device_id: str) -> int | None:
        """The last number handed out for ``device_id``, or None if none ever was."""
        with self._mutex:
            row = self._db.execute("SELECT last_seq FROM device_seq WHERE device_id = ?", (device_id,)).fetchone()
        return int(row[0]) if row else None

    def close(self) -> None:
        with self._mutex:
            if not self._lock.held:
                return
            self._db.close()
            self._lock.release()

    def __enter__(self) -> SequenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
