"""Properties of schedules (§3), the APR (§1) and the 24 % cap, over the product's ranges."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.domain.calendar import due_dates
from microloan.domain.rates import BAND_MAX_UNITS, MICRO_STEP_UNITS, RATE_SCALE, DailyRate
from microloan.domain.schedule import (
    APR_CAP_BP100,
    Method,
    Schedule,
    annuity_fen,
    apr_bp100,
    build_schedule,
    capped_schedule,
    within_apr_cap,
)

from .strategies import draw_dates, methods, principals_fen, rates, schedules, terms

EXAMPLES = settings(deadline=None, max_examples=200)


def half_up(value: Fraction) -> int:
    return int((2 * value.numerator + value.denominator) // (2 * value.denominator))


@EXAMPLES
@given(schedules())
def test_schedule_repays_exactly_the_principal(s: Schedule) -> None:
    assert sum(s.principals) == s.principal_fen
    assert all(p >= 0 for p in s.principals)
    assert all(i >= 0 for i in s.interests)
    assert (s.due_dates, s.days) == due_dates(s.drawn_on, s.term_months)
    assert all(28 <= d <= 31 for d in s.days)


@EXAMPLES
@given(schedules())
def test_each_period_interest_is_the_rounded_exact_interest(s: Schedule) -> None:
    rate = Fraction(s.rate.units, RATE_SCALE)
    balance = s.principal_fen
    for principal, interest, days in zip(s.principals, s.interests, s.days, strict=True):
        assert interest == half_up(balance * rate * days)
        balance -= principal
    assert balance == 0


@EXAMPLES
@given(schedules())
def test_method_shapes(s: Schedule) -> None:
    n = s.term_months
    if s.method is Method.EQUAL_PRINCIPAL:
        assert s.principals[:-1] == (s.principal_fen // n,) * (n - 1)
        assert s.principals[-1] >= s.principal_fen // n
    else:
        level = annuity_fen(s.principal_fen, s.rate.units, n)
        assert s.totals[:-1] == (level,) * (n - 1)


def irr_monthly(principal_fen: int, totals: tuple[int, ...]) -> Decimal:
    """Monthly IRR by Newton's method at 50 significant digits (independent of the code)."""
    with localcontext() as ctx:
        ctx.prec = 50
        p = Decimal(principal_fen)
        i = Decimal("0.01")
        for _ in range(100):
            v = 1 / (1 + i)
            f, df, vk = -p, Decimal(0), Decimal(1)
            for k, amount in enumerate(totals, start=1):
                vk *= v
                f += amount * vk
                df -= k * amount * vk * v
            step = f / df
            i -= step
            if abs(step) < Decimal("1e-40"):
                break
        return +i


@EXAMPLES
@given(schedules())
def test_apr_matches_a_high_precision_irr(s: Schedule) -> None:
    apr = apr_bp100(s.principal_fen, s.totals)
    exact = irr_monthly(s.principal_fen, s.totals) * 120_000  # × 12 months, in 0.01 %
    assert abs(apr - exact) <= 1
    assert abs(apr - exact) <= Decimal("0.5") + Decimal("1e-20")  # rounded, not truncated


# Rates near the top of the band, where the cap bites, are drawn more often.
top_heavy_rates = st.one_of(
    rates, st.builds(DailyRate, st.integers(BAND_MAX_UNITS - 300_000, BAND_MAX_UNITS))
)


@EXAMPLES
@given(principals_fen, terms, top_heavy_rates, methods, draw_dates)
def test_capped_schedule_is_within_the_cap_at_the_highest_micro_step(
    principal_fen: int, term: int, rate: DailyRate, method: Method, drawn: date
) -> None:
    capped = capped_schedule(principal_fen, term, rate, method, drawn)
    assert within_apr_cap(capped)
    assert apr_bp100(principal_fen, capped.totals) <= APR_CAP_BP100
    assert capped.rate <= rate
    uncapped = build_schedule(principal_fen, term, rate, method, drawn)
    if capped.rate == rate:
        assert capped == uncapped
        return
    assert not within_apr_cap(uncapped)
    assert capped.rate.units % MICRO_STEP_UNITS == 0
    step_up = DailyRate(capped.rate.units + MICRO_STEP_UNITS)
    if step_up <= rate:
        higher = build_schedule(principal_fen, term, step_up, method, drawn)
        assert not within_apr_cap(higher)


@EXAMPLES
@given(principals_fen, terms, top_heavy_rates, methods, draw_dates)
def test_within_apr_cap_agrees_with_the_rounded_apr(
    principal_fen: int, term: int, rate: DailyRate, method: Method, drawn: date
) -> None:
    s = build_schedule(principal_fen, term, rate, method, drawn)
    apr = apr_bp100(s.principal_fen, s.totals)
    if within_apr_cap(s):
        assert apr <= APR_CAP_BP100
    else:
        assert apr >= APR_CAP_BP100
