"""Fixtures of the edge-agent tests (helpers in ``edge_support.py``). Nothing here ever skips."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig

from .edge_support import REPO, Mosquitto, Subscriber, agent_config_dict


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker (no persistence) for one test."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Mosquitto(workdir)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that keeps sessions and queued messages across a restart (saved on SIGTERM)."""
    workdir = tmp_path / "pbroker"
    workdir.mkdir()
    b = Mosquitto(workdir, persistence=True)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def closed_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that refuses anonymous clients (and has no users): every CONNECT is refused."""
    workdir = tmp_path / "cbroker"
    workdir.mkdir()
    b = Mosquitto(workdir, anonymous=False)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    started: list[Subscriber] = []

    def make(port: int, **kwargs: Any) -> Subscriber:
        sub = Subscriber(port, **kwargs).start()
        started.append(sub)
        return sub

    yield make
    for sub in started:
        sub.stop()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    def make(port: int, **overrides: Any) -> AgentConfig:
        return AgentConfig.model_validate(agent_config_dict(tmp_path, port, **overrides))

    return make


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for ``python -m edge_agent`` subprocesses run from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env
