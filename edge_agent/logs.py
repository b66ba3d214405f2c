"""Log output of ``edge-agent``: text lines (the default) or one JSON object per line (``--log-format json``).

A JSON line carries ``ts`` (ISO 8601, UTC, milliseconds), ``level``, ``logger`` and ``msg`` (the
formatted message, the same text as in the text format), then the structured fields the agent
passes with ``extra=`` (``device_id``, ``source``, ``broker``, ``queue_batches``, ``retry_in_s``, ...),
and ``exc`` with the traceback when there is one. For example::

    {"ts": "2026-11-22T07:49:43.101+00:00", "level": "WARNING", "logger": "edge_agent.runner",
     "msg": "source plc-02 failed (cannot connect ...); retrying in 0.6 s (failure 1)",
     "device_id": "plc-02", "source": "modbus", "error": "cannot connect ...", "failures": 1, ...}

This is the standard library's ``logging`` with a 40-line formatter rather than
``python-json-logger``: the gateway install stays one dependency smaller, and the fields and their
names are ours to keep stable (log pipelines match on them).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["JsonFormatter", "LogFormat", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came with ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    return repr(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: ts, level, logger, msg, the ``extra`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=_jsonable)  # ASCII only, and newlines escaped: one record, one line


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str) -> None:
    logging.getLogger("edge_agent").critical("uncaught exception in %s", where, exc_info=(exc_type, exc, tb))


def setup_logging(level: str, fmt: LogFormat | str = LogFormat.text) -> None:
    """Configure the root logger (stderr) at ``level`` in the given format; quieten the protocol libraries."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    if LogFormat(fmt) is LogFormat.json:
        handler.setFormatter(JsonFormatter())
        # Tracebacks of uncaught exceptions would otherwise break the one-object-per-line stream.
        sys.excepthook = lambda t, e, tb: _log_uncaught(t, e, tb, "main thread")
        threading.excepthook = lambda a: _log_uncaught(
            a.exc_type, a.exc_value or a.exc_type(), a.exc_traceback, f"thread {a.thread.name if a.thread else '?'}"
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=numeric, handlers=[handler])
    if numeric > logging.DEBUG:
        # The runner already reports every source failure (with backoff); the protocol libraries'
        # own lines would repeat it on each retry.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        logging.getLogger("edge_agent.paho").setLevel(logging.CRITICAL)  # the publisher logs the reason
