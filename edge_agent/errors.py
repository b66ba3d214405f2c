"""Errors of the edge agent. Each carries the context needed to act on it.

::

    AgentError                  base class of every edge-agent error
     ├── ConfigError            the config file is unusable (file, line, field)
     ├── SourceError            a source cannot be initialised, started or read (device)
     ├── StateError             the state directory cannot be used (path)
     └── PublishError           the broker refused, or batches were not acknowledged in time
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AgentError", "ConfigError", "PublishError", "SourceError", "StateError"]


class AgentError(Exception):
    """Base class of every edge-agent error."""


class ConfigError(AgentError):
    """The configuration is unusable.

    The message reads ``FILE:LINE: FIELD: REASON`` with the parts that are known; further
    problems found in the same file are in ``more`` (and on the following lines of the message).
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
        more: list[ConfigError] | None = None,
    ) -> None:
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.more = list(more or [])
        where = self.file or ""
        if where and line is not None:
            where = f"{where}:{line}"
        message = ": ".join(p for p in (where, field, reason) if p)
        for other in self.more:
            message += f"\n  {other}"
        super().__init__(message)


class SourceError(AgentError):
    """A source failed; ``device_id`` names the device it reads."""

    def __init__(self, device_id: str, reason: str) -> None:
        super().__init__(f"source {device_id}: {reason}")
        self.device_id = device_id
        self.reason = reason


class StateError(AgentError):
    """The state directory (sequence numbers) is unusable or locked by another agent."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"state {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class PublishError(AgentError):
    """Publishing failed: the broker refused the connection or batches were not acknowledged."""

    def __init__(self, reason: str, *, unacked: dict[str, int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unacked = dict(unacked or {})
