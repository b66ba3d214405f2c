"""What-if: the replay's pure parts, and the command a compliance officer runs (`python -m policy whatif`)
against recorded decisions in a real control store and a draft policy directory. Reading the decision log
back into patterns is the ingest's (tests/ingest/store/test_recorded_decisions.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack import PostgresServer, free_port
from policy import DEFAULT_POLICY_DIR, Decision, whatif
from policy.whatif import Part, new_outcome
from tests.policy.decision_seed import (
    DE_MACHINE,
    DE_PERSONAL,
    MESSAGES,
    STREAMS,
    VN_PERSONAL,
    copy_draft,
    seeded_control,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def control(pg_server: PostgresServer) -> str:
    return seeded_control(pg_server, "whatif_control", NOW)


@pytest.fixture(scope="module")
def draft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_draft(tmp_path_factory.mktemp("draft") / "policy")


def test_new_outcome_keeps_the_recorded_one_when_verdict_and_transforms_agree():
    part = Part("eu-central", "DE", "transformed", True, {"operator_badge": "pseudonymize"}, [], [], {})

    def decision(allow: bool, transforms: dict[str, str]) -> Decision:
        return Decision(
            allow=allow,
            localization="none",
            requires=[],
            transforms=transforms,
            reasons=["r"],
            policy_revision="sha256:x",
        )

    assert new_outcome(decision(True, {"operator_badge": "pseudonymize"}), part) == "transformed"
    assert new_outcome(decision(False, {}), part) == "denied"
    assert new_outcome(decision(True, {}), part) == "stored"
    stored = Part("r", "DE", "stored", True, {}, [], [], {})
    assert new_outcome(decision(True, {"x": "remove"}), stored) == "transformed"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1.5h", 5400)]
)
def test_parse_window(text: str, seconds: int):
    assert whatif.parse_window(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0h", "3y"])
def test_parse_window_rejects(text: str):
    with pytest.raises(ValueError, match="not a window length"):
        whatif.parse_window(text)


def test_windows_and_slices():
    until = datetime(2026, 5, 2, tzinfo=UTC)
    assert whatif.resolve_window(None, until, None) == (until - timedelta(hours=24), until)
    assert whatif.parse_time("2026-05-01T08:00:00") == datetime(2026, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="empty window"):
        whatif.resolve_window(until, until, None)
    parts = whatif.slices(until - timedelta(days=30), until)
    assert len(parts) == whatif.MAX_SLICES and parts[0][0] == until - timedelta(days=30) and parts[-1][1] == until
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert len(whatif.slices(until - timedelta(minutes=5), until)) == 1


# --- the command a compliance officer runs ---------------------------------------------------------


def _whatif(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "policy", "whatif", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=DEFAULT_POLICY_DIR.parent,
        env={**os.environ, **(env or {})},
    )


def test_command_json(control: str, draft: Path):
    proc = _whatif(str(draft), "--window", "24h", "--json", env={"INGEST_CONTROL_DSN": control})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["decisions"] == MESSAGES * sum(len(s.regions) for s in STREAMS)
    assert report["changed_decisions"] == 2 * MESSAGES
    assert report["newly_quarantined"] == {"messages": MESSAGES, "readings": MESSAGES * VN_PERSONAL.readings}
    changed = [t for t in report["transitions"] if t["changed"]]
    assert {(t["origin"], t["region"], t["old"], t["new"]) for t in changed} == {
        ("DE", "us-east", "stored", "denied"),
        ("VN", "ap-southeast", "stored", "denied"),
    }


def test_command_text(control: str, draft: Path):
    since = (NOW - timedelta(hours=24)).isoformat()
    proc = _whatif(str(draft), "--control-dsn", control, "--since", since, "--examples", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "DE -> US(us-east)" in out and "stored -> denied" in out
    assert f"no longer stored in us-east: {MESSAGES} decisions" in out
    assert "quarantined" in out
    assert f"{DE_PERSONAL.device_id} seq" in out and "recorded: " in out and "draft:    " in out
    examples = out.split("Examples:")[1]
    assert f" {DE_MACHINE.category}:" not in examples  # unchanged flows are not examples
    assert examples.count(" seq ") == 2  # --examples 1: one per changed transition


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "soon"], "not a window length"),
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--limit", "0"], "--limit must be at least 1"),
        ([], "no control store"),
    ],
)
def test_command_usage_errors_exit_2_with_one_line(draft: Path, args: list[str], message: str):
    proc = _whatif(str(draft), *args, env={"INGEST_CONTROL_DSN": ""})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


def test_command_unreachable_store_and_broken_draft_exit_1(draft: Path, policy_copy: Path):
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/control?connect_timeout=2"
    proc = _whatif(str(draft), "--control-dsn", dsn)
    assert proc.returncode == 1 and proc.stderr.startswith("error: control store: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    (policy_copy / "data" / "groups.json").write_text("{broken")
    proc = _whatif(str(policy_copy), "--control-dsn", dsn)
    assert proc.returncode == 1 and "data/groups.json" in proc.stderr
