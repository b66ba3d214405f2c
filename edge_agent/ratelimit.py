"""A token bucket: at most ``rate`` messages per second on average, bursts of up to ``burst``."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Tokens refill continuously at ``rate`` per second up to ``burst``; one message costs one token.

    Not thread-safe: the publisher's network thread owns it.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def available(self) -> int:
        """Whole tokens available now."""
        self._refill()
        return int(self._tokens)

    def take(self, n: int) -> None:
        """Spend ``n`` tokens (callers ask :meth:`available` first)."""
        self._refill()
        self._tokens -= n

    def wait_s(self) -> float:
        """Seconds until the next token."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
