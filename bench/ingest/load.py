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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.ingest.pgwatch import PostgresWatch

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


@dataclass(frozen=True)
class ProcessTime:
    comm: str
    ppid: int
    started: int  # start time in clock ticks after boot: tells a reused pid from the same process
    jiffies: int  # utime + stime + cutime + cstime (children it reaped included)


def _process_jiffies() -> dict[int, ProcessTime]:
    """pid -> its command name, start time and CPU time, for every live process."""
    table: dict[int, ProcessTime] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        head, rest = text.rsplit(")", 1)
        fields = rest.split()  # fields[0] is field 3 of proc(5): state
        table[int(entry.name)] = ProcessTime(
            head.split("(", 1)[1], int(fields[1]), int(fields[19]), sum(int(x) for x in fields[11:15])
        )
    return table


def _tree_jiffies(root: int, table: dict[int, ProcessTime]) -> int:
    """CPU time of ``root`` and its live descendants (their reaped children included)."""
    children: dict[int, list[int]] = {}
    for pid, proc in table.items():
        children.setdefault(proc.ppid, []).append(pid)
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid].jiffies
        stack.extend(children.get(pid, []))
    return total


# Python children are told apart by their command line (module names of this repo).
_PYTHON_ROLES = (
    ("ingest serve", "ingest"),
    ("bench.ingest.publish", "publishers"),
    ("bench.ingest.subscriber", "bare subscriber"),
    ("bench.ingest.minimal", "minimal pipeline"),
)
_NAMED_ROLES = {
    "postgres": "postgres",
    "mosquitto": "mosquitto",
    "mosquitto_pub": "publishers",
    "mosquitto_sub": "mosquitto_sub",
    "psql": "psql",
}


def process_role(pid: int, comm: str, bench_pid: int) -> str:
    """What a process is to the benchmark: ``ingest``, ``postgres``, ``mosquitto``, ``publishers``, ...;
    ``other`` for anything else on the machine."""
    if pid == bench_pid:
        return "bench"  # with the publishers it started and reaped
    if comm in _NAMED_ROLES:
        return _NAMED_ROLES[comm]
    if comm.startswith("python"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "other"
        for needle, role in _PYTHON_ROLES:
            if needle in cmdline:
                return role
    return "other"


def by_role(
    start: dict[int, ProcessTime],
    end: dict[int, ProcessTime],
    seconds: float,
    bench_pid: int,
    busy_cpus: float | None = None,
) -> dict[str, float]:
    """CPUs used per role between two process tables (1.0 = one CPU busy for the whole window).

    A process that exited inside the window counts in its parent's reaped-children time (the
    publishers under ``bench``, PostgreSQL backends under ``postgres``): its time before the window,
    known from the start table, is taken off the parent again. One that exited unreaped is missing. An
    approximation meant to show where the machine's CPU went, not a measurement to divide by.

    ``busy_cpus`` (the machine's busy CPUs in the window, from /proc/stat) caps ``other``: a process
    whose parent exited first is reaped by another process (a subreaper, init), whose children time
    then grows by the orphan's whole lifetime, which the start table cannot take off."""
    if seconds <= 0:
        return {}
    jiffies: dict[int, int] = {}
    for pid, now in end.items():
        before = start.get(pid)
        jiffies[pid] = now.jiffies - (before.jiffies if before and before.started == now.started else 0)
    for pid, then in start.items():
        gone = pid not in end or end[pid].started != then.started
        parent = end.get(then.ppid)
        if gone and parent is not None and then.ppid in jiffies:
            jiffies[then.ppid] -= then.jiffies
    used: dict[str, float] = defaultdict(float)
    for pid, delta in jiffies.items():
        if delta > 0:
            used[process_role(pid, end[pid].comm, bench_pid)] += delta / _HZ / seconds
    if busy_cpus is not None and "other" in used:
        room = busy_cpus - sum(v for k, v in used.items() if k != "other")
        if room > 0:
            used["other"] = min(used["other"], room)
        else:
            del used["other"]
    return dict(sorted(used.items(), key=lambda kv: -kv[1]))


@dataclass
class Sample:
    wall: float
    busy: int
    ours: int
    processes: dict[int, ProcessTime] = field(default_factory=dict)


def sample(processes: bool = False) -> Sample:
    """The machine's busy time and this process tree's; with ``processes``, every process's (by role later)."""
    table = _process_jiffies()
    return Sample(time.monotonic(), _busy_jiffies(), _tree_jiffies(os.getpid(), table), table if processes else {})


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


@dataclass
class Windows:
    """What a LoadMeter recorded for some windows (to keep the least disturbed attempt of a phase)."""

    foreign: dict[str, float]
    busy: dict[str, float]
    roles: dict[str, dict[str, float]]
    wal_bytes: dict[str, int]
    pg_waits: dict[str, dict[str, float]]
    seconds: dict[str, float]


class LoadMeter:
    """Per-window foreign CPU share, the machine's total busy share, and the CPUs each role (ingest,
    postgres, mosquitto, publishers, ...) used, keyed by the window's name; with ``watch`` set, also
    PostgreSQL's WAL bytes and wait events (:mod:`bench.ingest.pgwatch`)."""

    def __init__(self) -> None:
        self.windows: dict[str, float] = {}
        self.busy: dict[str, float] = {}
        self.roles: dict[str, dict[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self.watch: PostgresWatch | None = None
        self._open: dict[str, Sample] = {}

    def start(self, key: str) -> None:
        if self.watch is not None:
            self.watch.start(key)
        self._open[key] = sample(processes=True)

    def stop(self, key: str) -> float:
        start, end = self._open.pop(key), sample(processes=True)
        share = foreign_share(start, end)
        self.windows[key] = share
        self.busy[key] = busy_share(start, end)
        self.seconds[key] = end.wall - start.wall
        self.roles[key] = by_role(
            start.processes, end.processes, end.wall - start.wall, os.getpid(), busy_cpus=self.busy[key] * _NCPU
        )
        if self.watch is not None:
            self.watch.stop(key)
        return share

    def take(self, keys: list[str]) -> Windows:
        wal = self.watch.wal_bytes if self.watch else {}
        waits = self.watch.waits if self.watch else {}
        return Windows(
            {k: self.windows[k] for k in keys if k in self.windows},
            {k: self.busy[k] for k in keys if k in self.busy},
            {k: self.roles[k] for k in keys if k in self.roles},
            {k: wal[k] for k in keys if k in wal},
            {k: waits[k] for k in keys if k in waits},
            {k: self.seconds[k] for k in keys if k in self.seconds},
        )

    def put(self, recorded: Windows) -> None:
        self.windows.update(recorded.foreign)
        self.busy.update(recorded.busy)
        self.roles.update(recorded.roles)
        self.seconds.update(recorded.seconds)
        if self.watch is not None:
            self.watch.wal_bytes.update(recorded.wal_bytes)
            self.watch.waits.update(recorded.pg_waits)

    def wait_quiet(self, max_wait_s: float, threshold: float = 0.10, window_s: float = 1.0) -> float:
        """Wait (at most ``max_wait_s``) until other processes use less than ``threshold`` of the CPUs."""
        deadline = time.monotonic() + max_wait_s
        while True:
            a = sample()
            time.sleep(window_s)
            share = foreign_share(a, sample())
            if share < threshold or time.monotonic() >= deadline:
                return share
