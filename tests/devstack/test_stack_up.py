"""The README's run command: `python -m devstack up` starts everything, prints the next steps (a token per
persona, the database DSNs, the broker address, where the logs are), shows data flowing, and stops everything
it started on SIGINT (Ctrl-C), leaving no process behind; with --keep its data and logs stay."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
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
        [sys.executable, "-m", "devstack", "up", "--single", "--interval-ms", "100", "--keep"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
            if line.startswith("rows:") and all(
                f"{r} " in line for r in ("eu-central", "us-east", "cn-north", "ap-southeast")
            ):
                flowing = True
                break
        assert stack_dir, "".join(lines)
        assert flowing, "".join(lines)
        assert any("Dashboard  http://127.0.0.1:" in x for x in lines)
        assert _processes_mentioning(stack_dir), "the stack's processes should be running"
        _check_next_steps("".join(lines))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped." in out
    try:
        assert f"kept the data and logs in {stack_dir}" in out
        assert (Path(stack_dir) / "ingest.log").stat().st_size > 0  # --keep: the logs the banner named stay
        assert (Path(stack_dir) / "agent-de-munich.log").exists()
    finally:
        shutil.rmtree(stack_dir, ignore_errors=True)
    time.sleep(0.5)
    assert _processes_mentioning(stack_dir) == []
    api_port = int(next(re.search(r":(\d+)/dashboard", x).group(1) for x in lines if "/dashboard" in x))  # type: ignore[union-attr]  # the line has the dashboard's URL
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", api_port)) != 0, "the ingest API is still listening"


EXPECTED_PERSONAS = {  # (role, user, region scope) as printed
    ("admin", "admin", "*"),
    ("operator", "operator-eu", "eu-central"),
    ("operator", "operator-cn", "cn-north"),
    ("engineer", "engineer-eu-us", "eu-central,us-east"),
    ("compliance", "compliance", "*"),
}


def _check_next_steps(text: str) -> None:
    """Every DSN, the broker and every token the banner prints work as printed."""
    control = re.search(r"export INGEST_CONTROL_DSN=(\S+)", text)
    regions = re.search(r"export INGEST_REGION_DSNS=(.+)", text)
    assert control and regions, text
    with psycopg.connect(control.group(1), connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] >= 4  # type: ignore[index]  # count(*) always answers a row
    dsns = json.loads(shlex.split(regions.group(1))[0])
    assert sorted(dsns) == ["ap-southeast", "cn-north", "eu-central", "us-east"]
    for dsn in dsns.values():
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT count(*) FROM readings")
    broker = re.search(r"Broker\s+mqtt://127.0.0.1:(\d+)", text)
    assert broker, text
    with socket.create_connection(("127.0.0.1", int(broker.group(1))), timeout=5):
        pass
    config = re.search(r"edge-agent check --config (\S+)", text)
    assert config and Path(config.group(1)).is_file()
    api = re.search(r"API\s+(http://127.0.0.1:\d+)/api/v1/docs", text)
    assert api, text
    personas = re.findall(r"^  (\w+) +user (\S+) \[([^\]]+)\].*\n +token (rtk_\S+)\n +(\S+)$", text, re.MULTILINE)
    assert {(role, user, scope) for role, user, scope, _, _ in personas} == EXPECTED_PERSONAS
    for role, user, scope, token, link in personas:
        assert link == f"{api.group(1)}/dashboard#token={token}"
        me = httpx.get(f"{api.group(1)}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["user"] == user and role in me.json()["roles"]
        assert me.json()["regions"] == scope.split(",") if scope != "*" else me.json()["regions"] == "*"


@pytest.mark.integration
def test_up_runs_the_cells_bridged_with_data_flowing_in_each_and_across() -> None:
    """The default: every cell of deploy/local/cells.yaml with its own broker, ingest and databases; data flows in
    each cell and across (parts receipted over the bridges); Ctrl-C stops everything."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--interval-ms", "100"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    stack_dir = None
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline and len(seen) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.match(r"Logs\s+(\S+)", line):
                stack_dir = m.group(1)
            # flowing in each cell, and across: the sending cells' parts are receipted by the global cell
            if re.match(r"cell cn: rows: cn-north [1-9].* link to global up, .* [1-9]\d* receipted", line):
                seen.add("cn")
            if re.match(r"cell ap: rows: ap-southeast [1-9].* link to global up, .* [1-9]\d* receipted", line):
                seen.add("ap")
            if re.match(r"cell global: rows: eu-central [1-9]\d* .*us-east [1-9]", line):
                seen.add("global")
        text = "".join(lines)
        assert seen == {"cn", "ap", "global"}, text
        for cell in ("cn", "ap", "global"):
            assert re.search(rf"^Cell {cell} \(", text, re.MULTILINE), text
        assert stack_dir and _processes_mentioning(stack_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped." in out
    time.sleep(0.5)
    assert _processes_mentioning(stack_dir) == []
    assert not Path(stack_dir).exists()
