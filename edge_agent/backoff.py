"""Exponential backoff with jitter, shared by broker reconnects and source retries."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``min_s`` up to ``max_s``; each is drawn in [d/2, d] ("equal jitter").

    The jitter keeps a fleet of gateways from reconnecting in lock-step after a broker restart.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("need 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base delay."""
        base = min(self.max_s, self.min_s * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return self._rng.uniform(base / 2, base)

    def reset(self) -> None:
        """Call after a success: the next failure waits ``min_s`` again."""
        self.attempts = 0
