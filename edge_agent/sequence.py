"""Per-device monotonic batch sequence numbers that survive restarts and power loss.

The last number handed out for each device is committed to SQLite (WAL journal,
``synchronous=FULL``) *before* the number is used, so after any restart the next number is greater
than every number ever handed out. Numbers start at 1. A lock file keeps a second agent from using
the same state directory.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path

from edge_agent.errors import StateError

__all__ = ["SequenceStore"]

DB_NAME = "sequence.sqlite3"
LOCK_NAME = "agent.lock"


class SequenceStore:
    """Hands out per-device batch sequence numbers, persisted in ``state_dir``."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(self.state_dir, f"cannot create the directory: {exc.strerror or exc}") from None
        self._lock_fd = self._take_lock()
        self._mutex = threading.Lock()
        try:
            self._db = sqlite3.connect(self.state_dir / DB_NAME, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS device_seq (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            self._release_lock()
            raise StateError(self.state_dir / DB_NAME, f"cannot open: {exc}") from None

    def _take_lock(self) -> int:
        path = self.state_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(path, f"cannot open the lock file: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError(self.state_dir, f"in use by another agent (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1

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
            if self._lock_fd < 0:
                return
            self._db.close()
            self._release_lock()

    def __enter__(self) -> SequenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
