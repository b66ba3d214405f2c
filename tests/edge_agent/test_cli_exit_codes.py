"""The exit code of every ``edge-agent`` command, as the README documents them: 0 success; 1 a check failed,
batches unacknowledged, ``status`` found a problem, ``keygen`` could not write; 2 an unusable config or a wrong
command line. In process (typer's runner) except ``run``, which needs its own signal handlers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.cli import app

from .edge_support import REPO, agent_config_dict, free_port

runner = CliRunner()


def _config(tmp_path: Path, port: int, **overrides: object) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent_config_dict(tmp_path, port, **overrides), sort_keys=False))
    return path


def _unusable(tmp_path: Path) -> Path:
    path = _config(tmp_path, 1883)
    path.write_text(path.read_text().replace("machine: cnc_mill", "machine: lathe"))
    return path


def _code(*args: str) -> int:
    return runner.invoke(app, list(args)).exit_code


@pytest.mark.parametrize("command", [["check"], ["status"], ["pseudonym", "B-1001"]])
def test_an_unusable_config_exits_2(tmp_path: Path, command: list[str]) -> None:
    config = _unusable(tmp_path)
    assert _code(command[0], "--config", str(config), *command[1:]) == 2
    missing = tmp_path / "nowhere.yaml"
    assert _code(command[0], "--config", str(missing), *command[1:]) == 2


def test_check_exits_2_on_a_bad_config_and_1_on_a_failed_check(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--config", str(_unusable(tmp_path))])
    assert result.exit_code == 2 and result.stdout.startswith("FAIL  config:")
    unreachable = runner.invoke(app, ["check", "--config", str(_config(tmp_path, free_port()))])
    assert unreachable.exit_code == 1 and "FAIL  broker:" in unreachable.stdout


def test_status_exits_1_when_no_agent_runs(tmp_path: Path) -> None:
    assert _code("status", "--config", str(_config(tmp_path, 1883))) == 1
    assert _code("status", "--config", str(_config(tmp_path, 1883)), "--json") == 1


def test_keygen_exits_0_then_1_when_the_key_exists(tmp_path: Path) -> None:
    key = tmp_path / "k1.key"
    assert _code("keygen", str(key)) == 0
    assert _code("keygen", str(key)) == 1  # never overwritten
    assert _code("keygen", str(tmp_path / "no" / "such" / "dir" / "k.key")) == 1


def test_pseudonym_exits_0_with_a_key_and_2_without(tmp_path: Path) -> None:
    key = tmp_path / "k1.key"
    assert _code("keygen", str(key)) == 0
    keyed = _config(tmp_path, 1883, privacy={"pseudonymize": ["operator_badge"], "key_id": "k1", "key_file": str(key)})
    assert _code("pseudonym", "--config", str(keyed), "B-1001") == 0
    assert _code("pseudonym", "--config", str(keyed), "--device", "nope", "B-1001") == 2
    assert _code("pseudonym", "--config", str(_config(tmp_path, 1883)), "B-1001") == 2


def test_a_wrong_command_line_exits_2(tmp_path: Path) -> None:
    assert _code("frobnicate") == 2
    assert _code("check") == 2  # --config missing
    assert _code("check", "--config", str(_config(tmp_path, 1883)), "--bogus") == 2


def test_run_exits_2_on_a_bad_config_and_1_when_batches_are_not_acknowledged(tmp_path: Path) -> None:
    def run(config: Path, *extra: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config), *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).returncode

    assert run(_unusable(tmp_path)) == 2
    # no broker: one batch per device is never acknowledged within the agent's 30 s
    assert (
        run(
            _config(
                tmp_path,
                free_port(),
                broker={
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.5},
                },
            ),
            "--batches",
            "1",
        )
        == 1
    )
