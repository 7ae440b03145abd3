"""Rate limits per identity (a channel user, an operator, a client address): a moving window, at
most N requests in any period. Counted in process memory by default, or in Redis through the
``limits`` library to share the counts between server processes
(``MICROLOAN_RATE_LIMIT_STORAGE=redis://…``).

The in-memory window is this module's own (``MovingWindows``): per identity, the times of its
requests inside the period, oldest first, so a request costs O(1) amortised and starts no
thread. The ``limits`` library's memory storage inserts each hit at the head of a list (O(N))
and starts a timer thread that walks every identity about a hundred times a second: under load
that cost milliseconds a request. Identities whose window has emptied are swept out every
``SWEEP_EVERY`` requests, and at most ``MAX_IDENTITIES`` are kept: when a sweep is not enough,
the identities seen first are forgotten (their next requests start a fresh window).

With ``microloan serve --workers N`` each process counts on its own, so an identity whose
requests are spread over the N processes may get up to N times its rate; configure Redis where
an exact shared count matters.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from microloan.api.problems import ApiError

MAX_IDENTITIES = 200_000  # identities counted at once, per process
SWEEP_EVERY = 8_192  # requests between two sweeps of emptied windows

Key = tuple[str, str]  # (scope, identity)


@functools.lru_cache(maxsize=64)
def _rate(rate: str) -> tuple[RateLimitItem, int, int]:
    """A rate such as ``600/minute``, parsed once (the settings hold a handful): the item, its
    number of requests and its period in seconds."""
    item = parse(rate)
    return item, item.amount, item.get_expiry()


class MovingWindows:
    """Moving-window counts in this process: thread-safe, bounded, no background thread."""

    def __init__(
        self,
        *,
        max_identities: int = MAX_IDENTITIES,
        sweep_every: int = SWEEP_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert max_identities > 0 and sweep_every > 0
        self._max = max_identities
        self._sweep_every = sweep_every
        self._clock = clock
        self._lock = threading.Lock()
        self._hits = 0
        # per identity: its period (s) and the times of its requests inside it, oldest first
        self._windows: dict[Key, tuple[float, deque[float]]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: Key, limit: int, period_s: float) -> float | None:
        """Count one request of ``key`` if fewer than ``limit`` fell in the last ``period_s``
        seconds: None when counted, else the seconds until the window has room again."""
        assert limit > 0 and period_s > 0
        now = self._clock()
        with self._lock:
            self._hits += 1
            if self._hits % self._sweep_every == 0 or len(self._windows) >= self._max:
                self._sweep(now)
            window = self._windows.get(key)
            if window is None or window[0] != period_s:
                window = self._windows[key] = (period_s, deque())
            times = window[1]
            start = now - period_s
            while times and times[0] < start:
                times.popleft()
            if len(times) >= limit:
                return times[-limit] + period_s - now
            times.append(now)
            return None

    def _sweep(self, now: float) -> None:
        """Drop identities whose window has emptied; then, if still full, the first seen."""
        for key, (period_s, times) in list(self._windows.items()):
            if not times or times[-1] < now - period_s:
                del self._windows[key]
        excess = len(self._windows) - self._max * 9 // 10
        if excess > 0:
            for key in list(self._windows)[:excess]:  # dicts keep insertion order
                del self._windows[key]


class RateLimiter:
    def __init__(self, storage_uri: str = "memory://") -> None:
        self._windows: MovingWindows | None = None
        self._limiter: MovingWindowRateLimiter | None = None
        if storage_uri.split(":", 1)[0] == "memory":
            self._windows = MovingWindows()
        else:
            self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    @property
    def blocking(self) -> bool:
        """Whether a hit waits on I/O (a shared storage such as Redis): then an async caller
        must run it in a thread; the in-memory count may be called on the event loop."""
        return self._limiter is not None

    def hit(self, scope: str, identity: str, rate: str) -> None:
        """Count one request of ``identity`` in ``scope``; over ``rate`` → 429 with Retry-After."""
        item, limit, period_s = _rate(rate)
        if self._windows is not None:
            wait_s = self._windows.hit((scope, identity), limit, period_s)
            if wait_s is None:
                return
        else:
            assert self._limiter is not None
            if self._limiter.hit(item, scope, identity):
                return
            stats = self._limiter.get_window_stats(item, scope, identity)
            wait_s = stats.reset_time - time.time()
        wait = max(1, math.ceil(wait_s))
        raise ApiError(
            429,
            f"请求过于频繁,请 {wait} 秒后再试 too many requests: at most {rate}",
            code="rate.limited",
            field=scope,
            headers={"Retry-After": str(wait)},
        )
