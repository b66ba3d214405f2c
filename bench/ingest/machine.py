"""What the numbers were measured on: CPU, memory, versions, and the code revision."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from devstack.mosquitto import find_mosquitto
from devstack.postgres import find_pg_bin

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, object]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        pg = _run([str(find_pg_bin() / "postgres"), "--version"])
    except Exception:
        pg = "?"
    try:
        mosq = _run([str(find_mosquitto()), "-h"]).splitlines()[0]
    except Exception:
        mosq = "?"
    head = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    changed = f" + {len(dirty.splitlines())} modified tracked files" if dirty.strip() else ""
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "postgresql": pg,
        "mosquitto": mosq,
        "python": sys.version.split()[0],
        "paho-mqtt": _version("paho-mqtt"),
        "psycopg": _version("psycopg"),
        "psycopg-binary": _version("psycopg-binary"),
        "pydantic": _version("pydantic"),
        "regopy": _version("regopy"),
        "git": head + changed,
    }
