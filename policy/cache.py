"""A thread-safe LRU cache in front of any policy engine."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from policy.engine import PolicyEngine
from policy.errors import PolicyError
from policy.models import Decision, Flow


class CachedPolicyEngine:
    """Caches decisions by ``(inner.revision, UTC day, flow.cache_key())``.

    A new policy revision never serves an old decision: the revision is part of the key. The UTC day is
    part of it because the policy reads the clock at day granularity (adequacy decisions that expire:
    ``until`` in data/adequacy.json). Volume counters are part of the flow's key too (decisions and their
    reasons depend on them), so flows whose counters change every message do not hit the cache.
    """

    def __init__(self, inner: PolicyEngine, maxsize: int = 4096):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.inner = inner
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, int, str], tuple[Flow, Decision]] = OrderedDict()
        # Identity fast path: callers that reuse one (frozen) Flow object per flow, like the ingest's router,
        # skip building the canonical key (a JSON dump of the input) on every call. Holding the flow keeps
        # its id from being reused; bounded like the cache, emptied with it.
        self._by_id: dict[int, tuple[Flow, tuple[str, int, str], Decision]] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def revision(self) -> str:
        return self.inner.revision

    def decide(self, flow: Flow) -> Decision:
        revision, day = self.inner.revision, int(time.time() // 86400)
        memo = self._by_id.get(id(flow))
        if memo is not None and memo[0] is flow and memo[1][0] == revision and memo[1][1] == day:
            with self._lock:
                if memo[1] in self._entries:  # still cached (not evicted, not cleared): a hit, as by key
                    self._entries.move_to_end(memo[1])
                    self._hits += 1
                    return memo[2]
        key = (revision, day, flow.cache_key())
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                self._remember(flow, key, found[1])
                return found[1]
            self._misses += 1
        decision = self.inner.decide(flow)
        with self._lock:
            self._entries[key] = (flow, decision)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
            self._remember(flow, key, decision)
        return decision

    def _remember(self, flow: Flow, key: tuple[str, int, str], decision: Decision) -> None:
        if len(self._by_id) >= self.maxsize:
            self._by_id.clear()
        self._by_id[id(flow)] = (flow, key, decision)

    def document(self, path: str, value: Any) -> Any:
        """Another document of the policy, not cached (not on the hot path)."""
        return self.inner.document(path, value)  # type: ignore[attr-defined]  # every engine but the Protocol has it

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(flow) for flow in flows]

    def flows(self, limit: int | None = None) -> list[Flow]:
        """The cached flows, most recently used first: what a new revision's cache can be warmed with."""
        with self._lock:
            entries = list(reversed(self._entries.values()))
        return [flow for flow, _ in entries[:limit]]

    def warm(self, flows: Sequence[Flow], *, reset_counters: bool = True) -> int:
        """Decide ``flows`` now (before this cache serves traffic); return how many were evaluated.

        With ``reset_counters`` (for a cache not yet serving) hit and miss counters are reset afterwards, so
        ``stats()`` describes the traffic only.
        """
        evaluated = 0
        for flow in flows:
            before = self._misses
            try:
                self.decide(flow)
            except PolicyError:  # the traffic will meet the same error; nothing to keep
                continue
            evaluated += self._misses - before
        if reset_counters:
            with self._lock:
                self._hits = self._misses = 0
        return evaluated

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_id.clear()
            self._hits = 0
            self._misses = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self._hits, "misses": self._misses, "size": len(self._entries), "maxsize": self.maxsize}
