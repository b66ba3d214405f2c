"""Recorded decisions read back from a real control store as what-if patterns, and replayed against a
draft policy directory (``ingest.store.recorded_decisions`` + ``policy.whatif.replay``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack import PostgresServer
from ingest.store.recorded_decisions import read_patterns
from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, EmbeddedPolicyEngine, whatif
from tests.policy.decision_seed import (
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
    return seeded_control(pg_server, "recorded_decisions_control", NOW)


@pytest.fixture(scope="module")
def draft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_draft(tmp_path_factory.mktemp("draft") / "policy")


def test_replay_reports_transitions_rows_and_quarantine(control: str, draft: Path):
    since, until = NOW - timedelta(hours=24), NOW + timedelta(seconds=1)
    progress: list[tuple[str, int, int | None]] = []
    patterns = read_patterns(control, since=since, until=until, progress=lambda *a: progress.append(a))
    engine = CachedPolicyEngine(EmbeddedPolicyEngine.from_dir(draft), maxsize=64)
    report = whatif.replay(patterns, engine, since=since, until=until, progress=lambda *a: progress.append(a))

    per_message = sum(len(s.regions) for s in STREAMS)
    assert report.decisions == MESSAGES * per_message  # the two-day-old rows are outside the window
    assert report.messages == MESSAGES * len(STREAMS)
    # 8 recorded flows, 8 distinct inputs, each evaluated once: the replay is as fast as the distinct inputs
    assert report.distinct_inputs == 8
    assert engine.stats()["misses"] == 8
    assert list(report.recorded_revisions) == [EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR).revision]
    assert report.draft_revision == engine.revision

    changes = {(c.origin, c.region, c.category, c.old, c.new): (c.decisions, c.readings) for c in report.changes}
    assert changes == {
        ("DE", "us-east", "personal", "stored", "denied"): (MESSAGES, MESSAGES * DE_PERSONAL.readings),
        ("VN", "ap-southeast", "personal", "stored", "denied"): (MESSAGES, MESSAGES * VN_PERSONAL.readings),
    }
    unchanged = {(c.origin, c.region, c.category) for c in report.transitions if not c.changed}
    assert ("DE", "eu-central", "machine") in unchanged and ("VN", "us-east", "personal") in unchanged
    assert report.newly_denied == {
        "us-east": [MESSAGES, MESSAGES * DE_PERSONAL.readings],
        "ap-southeast": [MESSAGES, MESSAGES * VN_PERSONAL.readings],
    }
    assert report.newly_allowed == {}
    # Vietnam's personal data had one lawful region (ap-southeast) and now has none: quarantined.
    assert report.newly_quarantined == [MESSAGES, MESSAGES * VN_PERSONAL.readings]
    assert report.newly_placed == [0, 0]

    de = next(e for e in report.examples if e.origin == "DE")
    assert de.device_id == DE_PERSONAL.device_id and 1 <= de.seq <= MESSAGES
    assert any("Data Privacy Framework" in r for r in de.old_reasons)
    assert not any("Data Privacy Framework" in r for r in de.new_reasons)
    assert de.new_requires == ["BCR+TIA", "SCC+TIA"]
    assert de.policy_input["recipient"]["dpf_certified"] is True
    # progress: hour slices of the window, then the distinct inputs
    reads = [p for p in progress if p[0] == "read"]
    assert reads[0] == ("read", 0, 25) and reads[-1] == ("read", 25, 25)  # 24 h + 1 s: 25 slices
    assert progress[-1] == ("evaluate", 8, 8)


def test_same_policy_changes_nothing(control: str):
    since, until = NOW - timedelta(hours=24), NOW + timedelta(seconds=1)
    patterns = read_patterns(control, since=since, until=until)
    report = whatif.replay(patterns, EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR), since=since, until=until)
    assert report.changes == [] and report.reasons_only == 0 and report.examples == []
    assert "No outcome would change." in list(whatif.render_text(report))


def test_limit_reads_only_the_newest_decisions(control: str, draft: Path):
    since, until = NOW - timedelta(hours=72), NOW + timedelta(seconds=1)
    per_message = sum(len(s.regions) for s in STREAMS)
    patterns = read_patterns(control, since=since, until=until, limit=per_message * 3)
    report = whatif.replay(patterns, EmbeddedPolicyEngine.from_dir(draft), since=since, until=until)
    assert report.decisions == per_message * 3
    assert report.messages == 3 * len(STREAMS)
