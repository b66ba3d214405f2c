"""CPU accounting of the benchmark's timed windows (bench/ingest/load.py), on this machine's /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.ingest.load import _HZ, LoadMeter, ProcessTime, by_role, process_role


def test_process_role_names_the_benchmark_and_its_servers() -> None:
    me = os.getpid()
    assert process_role(me, "python3.11", me) == "bench"
    assert process_role(12345, "postgres", me) == "postgres"
    assert process_role(12345, "mosquitto", me) == "mosquitto"
    assert process_role(12345, "mosquitto_pub", me) == "publishers"
    assert process_role(12345, "kworker/0:1", me) == "other"


def test_python_children_are_told_apart_by_command_line() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "bench.ingest.publish"])
    try:
        time.sleep(0.2)
        assert process_role(child.pid, "python3", os.getpid()) == "publishers"
    finally:
        child.kill()
        child.wait()
    assert process_role(child.pid, "python3", os.getpid()) == "other"  # gone: nothing to read


def test_by_role_counts_cpu_deltas_and_new_processes() -> None:
    start = {1: ProcessTime("postgres", 0, 10, 100), 2: ProcessTime("mosquitto", 0, 10, 50)}
    end = {
        1: ProcessTime("postgres", 0, 10, 300),
        2: ProcessTime("mosquitto", 0, 10, 50),
        3: ProcessTime("postgres", 1, 99, 100),
    }  # 3 started in the window
    used = by_role(start, end, 2.0, bench_pid=-1)
    assert used == {"postgres": (200 + 100) / _HZ / 2.0}
    # a reused pid (another start time) counts from zero, not as a negative delta
    assert by_role({1: ProcessTime("postgres", 0, 10, 500)}, {1: ProcessTime("psql", 0, 70, 20)}, 1.0, -1) == {
        "psql": 20 / _HZ
    }
    # a kernel thread that renames itself is still the same process
    assert (
        by_role({4: ProcessTime("kworker/0:2-events", 2, 5, 13)}, {4: ProcessTime("kworker/0:2-mm", 2, 5, 13)}, 1.0, -1)
        == {}
    )
    assert by_role(start, end, 0, -1) == {}


def test_by_role_takes_a_reaped_childs_earlier_time_off_its_parent() -> None:
    # the bench (pid 10) reaps a publisher (pid 11) that had used 300 ticks before the window and 50 in it:
    # the bench's reaped-children time grows by all 350, of which only 50 belong to the window
    start = {10: ProcessTime("python3", 1, 5, 1000), 11: ProcessTime("mosquitto_pub", 10, 6, 300)}
    end = {10: ProcessTime("python3", 1, 5, 1000 + 20 + 350)}  # 20 of its own
    assert by_role(start, end, 1.0, bench_pid=10) == {"bench": (20 + 50) / _HZ}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_meter_attributes_a_busy_child_to_its_role() -> None:
    """Waits for the child to have burnt half a second of CPU (not for a time: on a loaded machine a busy loop
    gets far less than a CPU), then checks that the window attributes that CPU to the child's role."""
    meter = LoadMeter()
    meter.start("w")
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nwhile sys.stdin.read(0) == '': pass", "bench.ingest.subscriber"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _cpu_seconds(child.pid) < 0.5:
            assert time.monotonic() < deadline, "the child got no CPU in 2 minutes"
            time.sleep(0.05)
        meter.stop("w")
        wall = time.monotonic() - started
    finally:
        child.kill()
        child.wait()
        assert child.stdin is not None
        child.stdin.close()
    assert meter.roles["w"].get("bare subscriber", 0) * wall > 0.4, meter.roles["w"]
    kept = meter.take(["w"])
    other = LoadMeter()
    other.put(kept)
    assert other.roles == meter.roles and other.busy == meter.busy and other.windows == meter.windows


def test_other_never_exceeds_what_the_machine_did() -> None:
    # Another user's test run ends in the window: its pytest (40) exits, its PostgreSQL (50, 600 s of CPU so far) is
    # reparented and reaped by a subreaper (1): the reaper's children time jumps by that whole lifetime, which no
    # start-table entry can take off (50's parent was 40, gone). "other" is capped by the machine's busy CPUs.
    start = {
        1: ProcessTime("systemd", 0, 1, 100),
        40: ProcessTime("pytest", 1, 20, 500),
        50: ProcessTime("postgres", 40, 21, 60_000),
        60: ProcessTime("postgres", 1, 30, 1000),
    }
    end = {1: ProcessTime("systemd", 0, 1, 100 + 500 + 60_000 + 3), 60: ProcessTime("postgres", 1, 30, 1000 + 80)}
    uncapped = by_role(start, end, 1.0, bench_pid=-1)
    assert uncapped["other"] > 500  # the artefact
    capped = by_role(start, end, 1.0, bench_pid=-1, busy_cpus=1.5)
    assert capped["postgres"] == 80 / _HZ
    assert capped["other"] == 1.5 - 80 / _HZ
    assert "other" not in by_role(start, end, 1.0, bench_pid=-1, busy_cpus=0.5)  # nothing left for it
