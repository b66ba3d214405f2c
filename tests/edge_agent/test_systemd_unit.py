"""The systemd unit: it parses, runs a console script that exists with arguments the CLI accepts,
and is hardened (checked with ``systemd-analyze verify`` too when systemd is installed)."""

from __future__ import annotations

import importlib
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import typer

from edge_agent.cli import app

from .edge_support import REPO

UNIT = REPO / "deploy" / "systemd" / "edge-agent.service"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections, ``key=value`` lines, repeated keys accumulate, ``#``/``;`` comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number}: a setting outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_exec_start_is_our_console_script_with_valid_arguments() -> None:
    service = parse_unit(UNIT)["Service"]
    argv = shlex.split(service["ExecStart"][0])
    script = Path(argv[0])
    assert script.is_absolute() and script.name == "edge-agent"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["edge-agent"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    group = typer.main.get_command(app)
    run = group.commands[argv[1]]  # type: ignore[attr-defined]  # typer's root command is a click Group
    assert argv[1] == "run"
    params = run.make_context("run", argv[2:]).params  # raises on an unknown option or a bad value
    assert params["config"] == Path("/etc/edge-agent/agent.yaml") and params["report_every"] == 60


def test_the_unit_is_hardened_and_restarts() -> None:
    unit = parse_unit(UNIT)
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["Restart"] == "on-failure" and float(service["RestartSec"]) > 0
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert service.get("DynamicUser") == "yes" or "User" in service
    assert service["StateDirectory"] == "edge-agent"  # /var/lib/edge-agent: the agent's state_dir
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
    }
    assert {k: service.get(k) for k in expected} == expected
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not a systemd host: the parse checks above still ran
        return
    stub = tmp_path / "edge-agent"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/venv/bin/edge-agent", str(stub)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "edge-agent.service" in line]
    assert problems == [], done.stdout + done.stderr
