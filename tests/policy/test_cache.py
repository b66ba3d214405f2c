"""CachedPolicyEngine: LRU by (revision, flow.cache_key()), counters, thread safety."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from policy import CachedPolicyEngine, Decision, Flow, load_engine


class CountingEngine:
    """A stand-in inner engine that counts calls and can change revision."""

    def __init__(self) -> None:
        self.revision = "sha256:one"
        self.calls = 0
        self._lock = threading.Lock()

    def decide(self, flow: Flow) -> Decision:
        with self._lock:
            self.calls += 1
        return Decision(
            allow=flow.category == "machine",
            localization="none",
            requires=[],
            transforms={},
            reasons=[f"{flow.origin}->{flow.destination} {flow.category}"],
            policy_revision=self.revision,
        )

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(f) for f in flows]


def flow(category: str = "machine", dest: str = "US") -> Flow:
    return Flow(origin="DE", destination=dest, category=category)


def test_hits_and_misses():
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=8)
    first = cache.decide(flow())
    again = cache.decide(Flow(origin="de", destination="US", category="machine"))
    assert again is first
    assert inner.calls == 1
    assert cache.stats() == {"hits": 1, "misses": 1, "size": 1, "maxsize": 8}


def test_lru_eviction_keeps_recently_used():
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=2)
    cache.decide(flow(dest="US"))
    cache.decide(flow(dest="CN"))
    cache.decide(flow(dest="US"))  # US becomes most recent
    cache.decide(flow(dest="SG"))  # evicts CN
    assert inner.calls == 3
    cache.decide(flow(dest="US"))
    assert inner.calls == 3
    cache.decide(flow(dest="CN"))
    assert inner.calls == 4
    assert cache.stats()["size"] == 2


def test_new_revision_never_serves_old_decisions():
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=8)
    assert cache.decide(flow()).policy_revision == "sha256:one"
    inner.revision = "sha256:two"
    assert cache.revision == "sha256:two"
    assert cache.decide(flow()).policy_revision == "sha256:two"
    assert inner.calls == 2


def test_clear_resets_entries_and_counters():
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=8)
    cache.decide_many([flow(), flow(), flow("personal")])
    assert cache.stats()["hits"] == 1
    cache.clear()
    assert cache.stats() == {"hits": 0, "misses": 0, "size": 0, "maxsize": 8}
    cache.decide(flow())
    assert inner.calls == 3


def test_thread_safety_under_contention():
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=4)
    flows = [flow(dest=d) for d in ("US", "CN", "SG", "JP", "BR", "IN")] * 50
    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(cache.decide, flows))
    assert [d.reasons[0] for d in decisions] == [f"DE->{f.destination} machine" for f in flows]
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == len(flows)
    assert stats["size"] <= 4


def test_invalid_maxsize():
    with pytest.raises(ValueError):
        CachedPolicyEngine(CountingEngine(), maxsize=0)


def test_load_engine_wraps_the_embedded_engine_in_a_cache():
    engine = load_engine("embedded", cache_size=16)
    assert isinstance(engine, CachedPolicyEngine)
    a = engine.decide(Flow(origin="DE", destination="US", category="personal"))
    b = engine.decide(Flow(origin="DE", destination="US", category="personal"))
    assert a == b and not a.allow
    assert engine.stats()["hits"] == 1
    assert not isinstance(load_engine("embedded", cache_size=0), CachedPolicyEngine)


def test_flows_and_warm_carry_the_traffic_to_a_new_cache():
    old = CachedPolicyEngine(CountingEngine(), maxsize=8)
    old.decide_many([flow(dest="US"), flow(dest="CN"), flow(dest="US")])
    assert [f.destination for f in old.flows()] == ["US", "CN"]  # most recently used first
    assert [f.destination for f in old.flows(limit=1)] == ["US"]
    inner = CountingEngine()
    inner.revision = "sha256:two"
    new = CachedPolicyEngine(inner, maxsize=8)
    assert new.warm(old.flows()) == 2
    assert new.stats() == {"hits": 0, "misses": 0, "size": 2, "maxsize": 8}  # counters describe traffic only
    assert new.decide(flow(dest="CN")).policy_revision == "sha256:two"
    assert inner.calls == 2 and new.stats()["hits"] == 1


def test_the_same_flow_object_is_served_by_identity_with_the_same_rules():
    """The router reuses one Flow object per flow: the cache answers it without rebuilding the key, but
    still per revision, still counted, and not after an eviction or a clear."""
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, maxsize=2)
    f = flow()
    first = cache.decide(f)
    assert cache.decide(f) is first and cache.decide(f) is first
    assert inner.calls == 1
    assert cache.stats()["hits"] == 2

    inner.revision = "sha256:two"  # a new revision never serves the old decision
    second = cache.decide(f)
    assert second.policy_revision == "sha256:two" and inner.calls == 2

    cache.decide(flow("personal"))
    cache.decide(flow("machine", "CN"))  # evicts f's entry (maxsize 2)
    assert cache.decide(f).policy_revision == "sha256:two"
    assert inner.calls == 5  # evicted: decided again, not served from the identity memo

    cache.clear()
    cache.decide(f)
    assert inner.calls == 6
