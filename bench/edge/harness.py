"""Plumbing of the edge benchmark: a Mosquitto process, /proc sampling, progress lines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Broker", "ProcSampler", "free_port", "say"]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    for candidate in (os.environ.get("MOSQUITTO"), "/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    say("mosquitto not found: install it (sudo apt-get install mosquitto) or set MOSQUITTO=/path/to/mosquitto")
    sys.exit(2)


class Broker:
    """Mosquitto on 127.0.0.1:port (no persistence), started and stopped at will on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> float:
        """Start and return the monotonic time at which it accepted a TCP connection."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.monotonic()
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), from /proc/PID/statm."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


@dataclass
class ProcSampler:
    """CPU % of one core and RSS of a process over a window, sampled by :meth:`sample`."""

    pid: int
    t0: float = 0.0
    cpu0: float = 0.0
    rss: list[int] = field(default_factory=list)

    def begin(self) -> None:
        self.t0, self.cpu0 = time.monotonic(), cpu_seconds(self.pid)
        self.rss = [rss_bytes(self.pid)]

    def sample(self) -> tuple[float, int]:
        """CPU % since :meth:`begin` and RSS now."""
        rss = rss_bytes(self.pid)
        self.rss.append(rss)
        elapsed = time.monotonic() - self.t0
        return (100.0 * (cpu_seconds(self.pid) - self.cpu0) / elapsed if elapsed > 0 else 0.0), rss

    @property
    def rss_max(self) -> int:
        return max(self.rss) if self.rss else 0

    @property
    def rss_mean(self) -> float:
        return sum(self.rss) / len(self.rss) if self.rss else 0.0
