"""The README's run command: `python -m devstack up` starts everything, shows data flowing, and stops
everything it started on SIGINT (Ctrl-C), leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.integration
def test_up_shows_flowing_data_and_ctrl_c_stops_everything() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--interval-ms", "100"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    stack_dir = None
    flowing = False
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.match(r"Logs\s+(\S+)", line):
                stack_dir = m.group(1)
            # Data is flowing once every region shows rows.
            if line.startswith("rows:") and all(f"{r} " in line for r in ("eu-central", "us-east", "cn-north",
                                                                          "ap-southeast")):
                flowing = True
                break
        assert stack_dir, "".join(lines)
        assert flowing, "".join(lines)
        assert any("Dashboard  http://127.0.0.1:" in x for x in lines)
        assert _processes_mentioning(stack_dir), "the stack's processes should be running"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped." in out
    time.sleep(0.5)
    assert _processes_mentioning(stack_dir) == []
    api_port = int(next(re.search(r":(\d+)/dashboard", x).group(1) for x in lines if "/dashboard" in x))  # type: ignore[union-attr]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", api_port)) != 0, "the ingest API is still listening"
