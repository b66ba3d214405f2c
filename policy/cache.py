"""A thread-safe LRU cache in front of any policy engine."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from policy.engine import PolicyEngine
from policy.models import Decision, Flow


class CachedPolicyEngine:
    """Caches decisions by ``(inner.revision, flow.cache_key())``.

    A new policy revision never serves an old decision: the revision is part of the key. Volume counters
    are part of the key too (decisions and their reasons depend on them), so flows whose counters change
    every message do not hit the cache.
    """

    def __init__(self, inner: PolicyEngine, maxsize: int = 4096):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.inner = inner
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str], Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def revision(self) -> str:
        return self.inner.revision

    def decide(self, flow: Flow) -> Decision:
        key = (self.inner.revision, flow.cache_key())
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return found
            self._misses += 1
        decision = self.inner.decide(flow)
        with self._lock:
            self._entries[key] = decision
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return decision

    def decide_many(self, flows: Sequence[Flow]) -> list[Decision]:
        return [self.decide(flow) for flow in flows]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._hits = 0
            self._misses = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self._hits, "misses": self._misses, "size": len(self._entries), "maxsize": self.maxsize}
