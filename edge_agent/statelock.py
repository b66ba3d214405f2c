"""The state directory and its lock file: one agent per ``state_dir``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edge_agent.errors import StateError

__all__ = ["LOCK_NAME", "StateLock", "ensure_state_dir", "lock_holder"]

LOCK_NAME = "agent.lock"


def ensure_state_dir(state_dir: Path) -> Path:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(state_dir, f"cannot create the directory: {exc.strerror or exc}") from None
    return state_dir


def lock_holder(state_dir: Path) -> int | None:
    """The pid written in the lock file when that process is alive (the running agent), else None."""
    try:
        text = (state_dir / LOCK_NAME).read_text().strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by another user (e.g. the systemd service's DynamicUser)
    return pid


class StateLock:
    """An exclusive ``flock`` on ``state_dir/agent.lock`` holding the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(self.path, f"cannot open the lock file: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError(state_dir, f"in use by another agent (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1
