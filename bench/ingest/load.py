"""Background CPU: how much of the machine other processes used while a phase was timed.

Ratios measured side by side are only fair if the machine is the same for both sides. On a small
shared machine (CI runners, a developer's box running tests) other processes can take a large and
varying share of the CPUs, so every timed window records ``foreign`` = CPU used by processes that are
not this benchmark or its children (system-wide busy time from ``/proc/stat`` minus this process
tree's time, reaped children included), as a share of ``nproc x wall time``. ``wait_quiet`` waits a
bounded time for that share to drop before a phase starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NCPU = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _busy_jiffies() -> int:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0
    v = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal (guest is already in user)
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime + cutime + cstime)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = text.rsplit(")", 1)[1].split()
        # rest[0] = state, rest[1] = ppid, rest[11..14] = utime stime cutime cstime
        table[int(entry.name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return table


def _tree_jiffies(root: int) -> int:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][1]
        stack.extend(children.get(pid, []))
    return total


@dataclass
class Sample:
    wall: float
    busy: int
    ours: int


def sample() -> Sample:
    return Sample(time.monotonic(), _busy_jiffies(), _tree_jiffies(os.getpid()))


def foreign_share(a: Sample, b: Sample) -> float:
    """Share of all CPUs used by other processes between two samples (0..1)."""
    wall = b.wall - a.wall
    if wall <= 0:
        return 0.0
    foreign = max(0, (b.busy - a.busy) - (b.ours - a.ours))
    return min(1.0, foreign / _HZ / (wall * _NCPU))


def busy_share(a: Sample, b: Sample) -> float:
    """Share of all CPUs busy between two samples, whoever used them (this benchmark included; 0..1)."""
    wall = b.wall - a.wall
    if wall <= 0:
        return 0.0
    return min(1.0, max(0, b.busy - a.busy) / _HZ / (wall * _NCPU))


class LoadMeter:
    """Per-window foreign CPU share (and the machine's total busy share), keyed by the window's name."""

    def __init__(self) -> None:
        self.windows: dict[str, float] = {}
        self.busy: dict[str, float] = {}
        self._open: dict[str, Sample] = {}

    def start(self, key: str) -> None:
        self._open[key] = sample()

    def stop(self, key: str) -> float:
        start, end = self._open.pop(key), sample()
        share = foreign_share(start, end)
        self.windows[key] = share
        self.busy[key] = busy_share(start, end)
        return share

    def wait_quiet(self, max_wait_s: float, threshold: float = 0.10, window_s: float = 1.0) -> float:
        """Wait (at most ``max_wait_s``) until other processes use less than ``threshold`` of the CPUs."""
        deadline = time.monotonic() + max_wait_s
        while True:
            a = sample()
            time.sleep(window_s)
            share = foreign_share(a, sample())
            if share < threshold or time.monotonic() >= deadline:
                return share
