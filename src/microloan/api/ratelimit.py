"""Rate limits per identity (a channel user, an operator, a client address), through the
``limits`` library: a moving window kept in process memory, or in Redis to share it between
server processes (``MICROLOAN_RATE_LIMIT_STORAGE=redis://…``)."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from microloan.api.problems import ApiError


class RateLimiter:
    def __init__(self, storage_uri: str = "memory://") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, scope: str, identity: str, rate: str) -> None:
        """Count one request of ``identity`` in ``scope``; over ``rate`` → 429 with Retry-After."""
        item = parse(rate)
        if self._limiter.hit(item, scope, identity):
            return
        stats = self._limiter.get_window_stats(item, scope, identity)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            f"请求过于频繁,请 {wait} 秒后再试 too many requests: at most {rate}",
            code="rate.limited",
            field=scope,
            headers={"Retry-After": str(wait)},
        )
