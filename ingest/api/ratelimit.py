"""Request rate limits: per API token, or per client address for requests without a valid token.

Uses the ``limits`` library (moving window, in-memory storage): counted per replica, so N replicas
behind a load balancer allow up to N times the configured rate in total; a shared storage
(``limits`` supports Redis) would make it global, and is not needed for the abuse this guards against
(a runaway script, token guessing).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ingest.api.config import ApiSettings
from ingest.api.errors import TooManyRequestsError


class RateLimiter:
    def __init__(self, settings: ApiSettings) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_token: RateLimitItem = settings.rate_limit_item()
        self._per_address: RateLimitItem = settings.rate_limit_unauthenticated_item()

    def hit_token(self, token_id: str) -> None:
        """Count one request of ``token_id``; TooManyRequestsError when over the limit."""
        self._hit(self._per_token, "token", token_id, f"token {token_id}")

    def hit_address(self, address: str) -> None:
        """Count one request without a valid token from ``address``; TooManyRequestsError when over."""
        self._hit(self._per_address, "address", address, f"unauthenticated requests from {address}")

    def _hit(self, item: RateLimitItem, kind: str, key: str, who: str) -> None:
        if self._limiter.hit(item, kind, key):
            return
        stats = self._limiter.get_window_stats(item, kind, key)
        retry = math.ceil(stats.reset_time - time.time())
        raise TooManyRequestsError(
            f"rate limit exceeded for {who}: {item}; retry in {max(1, retry)} s", retry_after_s=retry
        )
