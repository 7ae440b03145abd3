"""The in-memory moving window of the rate limiter: exactly N hits in any period, the window
moving with the clock, identities counted apart, idle ones swept out, the identity cap; and a
model of the rule checked against it for any sequence of hits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.api.problems import ApiError
from microloan.api.ratelimit import MovingWindows, RateLimiter

PERIOD_S = 60.0
A = ("borrower", "wechat:a")
B = ("borrower", "wechat:b")


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_window_allows_exactly_n_hits_then_refuses(clock: Clock) -> None:
    w = MovingWindows(clock=clock)
    assert [w.hit(A, 5, PERIOD_S) for _ in range(5)] == [None] * 5
    assert w.hit(A, 5, PERIOD_S) == PERIOD_S  # room again when the first hit leaves
    clock.now_s = 10.0
    assert w.hit(A, 5, PERIOD_S) == 50.0  # a refusal is not counted: still the first hit's


def test_the_window_moves_with_the_clock(clock: Clock) -> None:
    w = MovingWindows(clock=clock)
    for at in (0.0, 10.0, 20.0):
        clock.now_s = at
        assert w.hit(A, 3, PERIOD_S) is None
    clock.now_s = 59.0
    assert w.hit(A, 3, PERIOD_S) == 1.0
    clock.now_s = 60.0  # the window is closed: a hit exactly one period ago still counts
    assert w.hit(A, 3, PERIOD_S) == 0.0
    clock.now_s = 60.5  # the hit at 0 has left; those at 10 and 20 have not
    assert w.hit(A, 3, PERIOD_S) is None
    assert w.hit(A, 3, PERIOD_S) == 10.0 + PERIOD_S - 60.5
    clock.now_s = 200.0  # all have left
    assert [w.hit(A, 3, PERIOD_S) for _ in range(4)] == [None, None, None, 0.0 + PERIOD_S]


def test_identities_and_scopes_are_counted_apart(clock: Clock) -> None:
    w = MovingWindows(clock=clock)
    assert w.hit(A, 1, PERIOD_S) is None
    assert w.hit(A, 1, PERIOD_S) is not None
    assert w.hit(B, 1, PERIOD_S) is None
    assert w.hit(("public", A[1]), 1, PERIOD_S) is None  # the same identity in another scope
    assert w.hit(B, 1, PERIOD_S) is not None
    assert len(w) == 3


def test_the_sweep_empties_idle_identities_and_keeps_live_ones(clock: Clock) -> None:
    w = MovingWindows(sweep_every=4, clock=clock)
    w.hit(("s", "idle-1"), 1, PERIOD_S)
    w.hit(("s", "idle-2"), 1, PERIOD_S)
    clock.now_s = 50.0
    w.hit(("s", "live"), 1, PERIOD_S)
    assert len(w) == 3
    clock.now_s = 61.0  # the idle ones' windows have emptied; the live one's has not
    w.hit(("s", "new"), 1, PERIOD_S)  # the fourth request: a sweep, before it is counted
    assert len(w) == 2
    assert w.hit(("s", "live"), 1, PERIOD_S) == 50.0 + PERIOD_S - 61.0  # its count kept
    clock.now_s = 1000.0  # every window so far has emptied
    w.hit(("s", "later-1"), 1, PERIOD_S)
    w.hit(("s", "later-2"), 1, PERIOD_S)
    assert len(w) == 4  # idle ones stay until a sweep
    w.hit(("s", "later-3"), 1, PERIOD_S)  # the eighth request sweeps again
    assert len(w) == 3
    assert w.hit(("s", "live"), 1, PERIOD_S) is None  # swept: a fresh window


def test_the_identity_cap_holds(clock: Clock) -> None:
    w = MovingWindows(max_identities=10, sweep_every=10_000, clock=clock)
    for n in range(100):  # every window live: the first seen are forgotten
        assert w.hit(("s", f"id-{n}"), 1, PERIOD_S) is None
        assert len(w) <= 10
    assert w.hit(("s", "id-99"), 1, PERIOD_S) is not None  # the newest is still counted
    assert w.hit(("s", "id-0"), 1, PERIOD_S) is None  # a forgotten one starts afresh


def test_at_the_cap_idle_identities_go_before_live_ones(clock: Clock) -> None:
    w = MovingWindows(max_identities=10, sweep_every=10_000, clock=clock)
    for n in range(9):
        w.hit(("s", f"idle-{n}"), 1, PERIOD_S)
    clock.now_s = 100.0
    w.hit(("s", "live"), 1, PERIOD_S)  # the tenth identity: the cap is reached
    w.hit(("s", "new"), 1, PERIOD_S)  # a sweep drops the nine idle ones
    assert len(w) == 2
    assert w.hit(("s", "live"), 1, PERIOD_S) is not None  # seen before the idle ones went


def test_the_limiter_refuses_with_429_and_retry_after() -> None:
    limiter = RateLimiter("memory://")
    assert not limiter.blocking
    limiter.hit("public", "10.0.0.1", "2/day")
    limiter.hit("public", "10.0.0.1", "2/day")
    limiter.hit("public", "10.0.0.2", "2/day")
    with pytest.raises(ApiError) as refused:
        limiter.hit("public", "10.0.0.1", "2/day")
    exc = refused.value
    assert exc.status == 429 and exc.code == "rate.limited" and exc.field == "public"
    assert exc.headers == {"Retry-After": "86400"}  # the wait, whole seconds rounded up
    assert (
        exc.message.startswith("请求过于频繁") and "too many requests: at most 2/day" in exc.message
    )


# -- the rule, as a model ------------------------------------------------------------------------

IDENTITIES = ("a", "b", "c")


@settings(deadline=None, max_examples=300)
@given(
    limit=st.integers(1, 5),
    period_ms=st.integers(1, 50),
    sweep_every=st.integers(1, 7),
    hits=st.lists(st.tuples(st.sampled_from(IDENTITIES), st.integers(0, 30)), max_size=120),
)
def test_no_identity_gets_more_than_n_hits_in_any_window_and_none_is_refused_needlessly(
    limit: int, period_ms: int, sweep_every: int, hits: list[tuple[str, int]]
) -> None:
    """Whole milliseconds (exact in floats). A hit is counted exactly when fewer than ``limit``
    of the identity's counted hits lie in the closed window [now - period, now]; a refusal
    names the wait until the oldest of them leaves. So no closed window of one period ever
    holds more than ``limit`` counted hits of one identity, whatever the sweeps do."""
    clock = Clock()
    w = MovingWindows(max_identities=100, sweep_every=sweep_every, clock=clock)
    period_s = float(period_ms)
    counted: dict[str, list[float]] = {i: [] for i in IDENTITIES}
    for identity, step_ms in hits:
        clock.now_s += step_ms
        now = clock.now_s
        inside = [t for t in counted[identity] if t >= now - period_s]
        answer = w.hit(("s", identity), limit, period_s)
        if len(inside) < limit:
            assert answer is None
            counted[identity].append(now)
        else:
            assert answer == inside[-limit] + period_s - now
            assert 0.0 <= answer <= period_s
    for times in counted.values():
        for start in times:  # a fullest window can be moved to start at a counted hit
            assert sum(1 for t in times if start <= t <= start + period_s) <= limit
