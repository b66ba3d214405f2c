"""CPU time of one process's threads over a window, from ``/proc/<pid>/task`` (docs/small-messages.md).

``ThreadCpu(pid)`` reads every thread's user + system time when made; ``stop()`` reads them again and returns the
difference per *role*: the thread's name (``comm``, 15 characters) without its pool number, so the four region
writers ``ingest-region_0`` ... ``_3`` are one role, ``ingest-region``, and paho's ``paho-mqtt-client-...`` is
``paho``. A thread that started or ended inside the window counts what it used in the window as far as ``/proc``
saw it (ended threads are lost: the ingest's threads live as long as the process).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HZ = os.sysconf("SC_CLK_TCK")
_POOL_NUMBER = re.compile(r"[_-]\d*$")  # "ingest-control_0" is cut to "ingest-control_"


def role_of(comm: str) -> str:
    """A thread's role from its name: ``ingest-region_2`` -> ``ingest-region``, ``paho-mqtt-clien`` -> ``paho``."""
    if comm.startswith("paho"):
        return "paho"
    return _POOL_NUMBER.sub("", comm) or comm


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (name, CPU seconds so far) of every thread of ``pid`` (none if the process is gone)."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        base = Path(f"/proc/{pid}/task/{tid}")
        try:
            comm = (base / "comm").read_text().strip()
            fields = (base / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / _HZ)
    return out


class ThreadCpu:
    """CPU seconds per thread role of ``pid`` between construction and :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = _threads(pid)

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for tid, (comm, cpu) in _threads(self.pid).items():
            before = self._start.get(tid, (comm, 0.0))[1]
            role = role_of(comm)
            used[role] = used.get(role, 0.0) + max(0.0, cpu - before)
        return dict(sorted(used.items(), key=lambda kv: -kv[1]))
