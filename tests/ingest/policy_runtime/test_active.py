"""The active policy (ingest.policy_runtime.active): the engine protocol, a new cache per activation, and
decisions during an activation coming from one revision or the other. Real PostgreSQL and policies."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ingest.policy_runtime import (
    ActivePolicy,
)
from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, PolicyEngine, compute_revision
from tests.ingest.policy_runtime.policies import (
    DE_TO_GB,
    DE_TO_US,
    drop_uk_adequacy,
    make_runtime,
)


def test_active_policy_implements_the_engine_protocol_and_swaps_with_a_new_cache(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir)
    active = runtime.active
    assert isinstance(active, ActivePolicy) and isinstance(active, PolicyEngine)
    assert active.revision == compute_revision(DEFAULT_POLICY_DIR)
    assert active.decide(DE_TO_GB).allow and active.decide_many([DE_TO_GB, DE_TO_US])[1].allow is False
    assert active.cache_stats() == {"hits": 1, "misses": 2, "size": 2, "maxsize": 64}
    old_engine = active.state.engine
    drop_uk_adequacy(policy_dir, fix_tests=True)
    result = runtime.check_files()
    assert result is not None and result.outcome == "accepted" and result.source == "file"
    assert active.revision == compute_revision(policy_dir) != result.previous_revision
    assert active.state.engine is not old_engine and isinstance(active.state.engine, CachedPolicyEngine)
    # a new cache, warmed before the swap with the flows the old one served (decided by the new revision)
    assert active.cache_stats() == {"hits": 0, "misses": 0, "size": 2, "maxsize": 64}
    decision = active.decide(DE_TO_GB)
    assert not decision.allow and decision.policy_revision == active.revision
    stats = active.cache_stats()
    assert stats is not None and stats["hits"] == 1
    assert runtime.check_files() is None  # nothing changed since


def test_decisions_during_an_activation_come_from_one_revision_or_the_other(control: str, policy_dir: Path):
    runtime = make_runtime(control, policy_dir, cache_size=0)
    before = runtime.active.revision
    drop_uk_adequacy(policy_dir, fix_tests=True)
    after = compute_revision(policy_dir)
    seen: list[tuple[float, str, bool]] = []  # (when the decision started, revision, allow)
    errors: list[BaseException] = []
    stop = threading.Event()

    def decide() -> None:
        while not stop.is_set():
            try:
                started = time.monotonic()
                d = runtime.active.decide(DE_TO_GB)
                seen.append((started, d.policy_revision, d.allow))
            except BaseException as exc:  # recorded and asserted below
                errors.append(exc)
                return

    workers = [threading.Thread(target=decide) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        assert runtime.check_files() is not None
        activated = time.monotonic()
        deadline = activated + 60  # a condition, not a time: decisions started after the activation returned
        while sum(1 for started, _, _ in list(seen) if started > activated) < 5 and not errors:
            assert time.monotonic() < deadline, "no decision started after the activation"
            time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not errors
    assert {(r, a) for _, r, a in seen} <= {(before, True), (after, False)}
    assert {(r, a) for started, r, a in seen if started > activated} == {(after, False)}
