"""Repayment schedules (lending rules §3), APR (§1) and the 24 % APR cap.

Everything is integer arithmetic on fen and rate units; exact rationals are compared by
cross-multiplying, so no float decides a figure. The APR uses a float Newton step only to
*guess* the answer, then proves the rounded value with exact integer tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

from microloan.domain.calendar import due_dates
from microloan.domain.rates import MICRO_STEP_UNITS, RATE_SCALE, DailyRate
from microloan.errors import InvalidInput

MAX_TERM_MONTHS = 36
APR_CAP_BP100 = 2400  # 24.00 %
_TWO_SCALE = 2 * RATE_SCALE


class Method(StrEnum):
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金, the product default
    EQUAL_INSTALLMENT = "equal_installment"  # 等额本息

    @classmethod
    def parse(cls, text: str, *, field: str = "method") -> Method:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInput(
                f"must be equal_principal or equal_installment (got {text!r})", field=field
            ) from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as columns: element k-1 belongs to period k."""

    principal_fen: int
    rate: DailyRate
    method: Method
    drawn_on: date
    due_dates: tuple[date, ...]
    days: tuple[int, ...]
    principals: tuple[int, ...]
    interests: tuple[int, ...]

    @property
    def term_months(self) -> int:
        return len(self.due_dates)

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(p + i for p, i in zip(self.principals, self.interests, strict=True))

    @property
    def total_interest_fen(self) -> int:
        return sum(self.interests)


def interest_fen(balance_fen: int, rate_units: int, days: int) -> int:
    """round(balance × rate × days), half up."""
    fen: int = (2 * balance_fen * rate_units * days + RATE_SCALE) // _TWO_SCALE
    return fen


@lru_cache(maxsize=4096)
def _annuity_factors(rate_units: int, periods: int) -> tuple[int, int]:
    """(numerator, denominator) of m(1+m)^n / ((1+m)^n − 1) with m = 30 r, as integers."""
    q = RATE_SCALE + 30 * rate_units
    qn = q**periods
    sn = RATE_SCALE**periods
    return 30 * rate_units * qn, RATE_SCALE * (qn - sn)


def annuity_fen(principal_fen: int, rate_units: int, periods: int) -> int:
    """A = round(P·m·(1+m)^n / ((1+m)^n − 1)); with a zero rate, P / n rounded."""
    if rate_units == 0:
        return (2 * principal_fen + periods) // (2 * periods)
    num, den = _annuity_factors(rate_units, periods)
    fen: int = (2 * principal_fen * num + den) // (2 * den)
    return fen


def equal_principal_parts(principal_fen: int, periods: int) -> list[int]:
    """floor(P / n) for every period but the last, which takes the rest."""
    part = principal_fen // periods
    return [part] * (periods - 1) + [principal_fen - part * (periods - 1)]


def amortise(
    principal_fen: int,
    rate_units: int,
    method: Method,
    days: tuple[int, ...] | list[int],
) -> tuple[list[int], list[int]]:
    """Principal and projected interest per period for ``principal_fen`` over ``days`` periods.

    Shared by the first schedule and by re-amortisation after a prepayment (§5).
    """
    periods = len(days)
    principals: list[int] = []
    interests: list[int] = []
    balance = principal_fen
    if method is Method.EQUAL_PRINCIPAL:
        for part, d in zip(equal_principal_parts(principal_fen, periods), days, strict=True):
            interests.append(interest_fen(balance, rate_units, d))
            principals.append(part)
            balance -= part
        return principals, interests
    annuity = annuity_fen(principal_fen, rate_units, periods)
    last = periods - 1
    for k, d in enumerate(days):
        interest = interest_fen(balance, rate_units, d)
        part = balance if k == last else min(balance, max(0, annuity - interest))
        interests.append(interest)
        principals.append(part)
        balance -= part
    return principals, interests


def build_schedule(
    principal_fen: int, term_months: int, rate: DailyRate, method: Method, drawn_on: date
) -> Schedule:
    """The schedule of §3 (no cap applied: see :func:`capped_schedule`)."""
    assert principal_fen > 0 and 1 <= term_months <= MAX_TERM_MONTHS
    dues, days = due_dates(drawn_on, term_months)
    principals, interests = amortise(principal_fen, rate.units, method, days)
    return Schedule(
        principal_fen, rate, method, drawn_on, dues, days, tuple(principals), tuple(interests)
    )


# ---------------------------------------------------------------------------------------------
# APR: monthly IRR × 12 of (−P at month 0, installment k at month k)


def _npv_sign(principal_fen: int, totals: tuple[int, ...], num: int, den: int) -> int:
    """Sign of NPV at monthly rate i = num/den: −P + Σ A_k / (1+i)^k, exactly.

    Multiplied through by den^n (1+i)^n: Σ A_k den^k u^(n−k) − P u^n with u = den + num.
    """
    u = den + num
    acc = 0
    den_k = 1
    for amount in totals:
        den_k *= den
        acc = acc * u + amount * den_k
    # acc now = Σ A_k den^k u^(n-k)
    diff: int = acc - principal_fen * u ** len(totals)
    return (diff > 0) - (diff < 0)


def _irr_guess(principal_fen: int, totals: tuple[int, ...]) -> float:
    """Newton's method on the monthly IRR; only a starting guess for the exact test."""
    i = 0.01
    p = float(principal_fen)
    for _ in range(30):
        v = 1.0 / (1.0 + i)
        f = -p
        df = 0.0
        vk = 1.0
        for k, a in enumerate(totals, start=1):
            vk *= v
            f += a * vk
            df -= k * a * vk * v
        if df == 0.0:
            break
        step = f / df
        i -= step
        if abs(step) < 1e-13:
            break
    return i


def apr_bp100(principal_fen: int, totals: tuple[int, ...]) -> int:
    """APR in hundredths of a per cent (1812 = 18.12 %), rounded half up, proven exactly.

    APR hundredths h satisfy (h − ½)/120000 ≤ IRR < (h + ½)/120000; NPV falls as the rate
    rises, so IRR ≥ x ⇔ NPV(x) ≥ 0.
    """
    h: int = round(_irr_guess(principal_fen, totals) * 120_000)
    for _ in range(64):
        if _npv_sign(principal_fen, totals, 2 * h - 1, 240_000) < 0:
            h -= 1  # IRR below the lower edge
        elif _npv_sign(principal_fen, totals, 2 * h + 1, 240_000) >= 0:
            h += 1  # IRR at or above the upper edge
        else:
            return h
    raise AssertionError("APR search did not converge")


def within_apr_cap(schedule: Schedule) -> bool:
    """Exact test that the schedule's APR ≤ 24 %, i.e. its monthly IRR ≤ 2 % (NPV(2 %) ≤ 0)."""
    return _npv_sign(schedule.principal_fen, schedule.totals, 1, 50) <= 0


def capped_schedule(
    principal_fen: int, term_months: int, rate: DailyRate, method: Method, drawn_on: date
) -> Schedule:
    """The schedule at ``rate``, or at the highest rate in 0.000001 steps whose APR ≤ 24 %."""
    schedule = build_schedule(principal_fen, term_months, rate, method, drawn_on)
    if within_apr_cap(schedule):
        return schedule
    # lo is within the cap; hi is not (ceil: a rate off the 0.000001 grid must still let the
    # step just below it be tried).
    lo, hi = 0, -(-rate.units // MICRO_STEP_UNITS)
    best = build_schedule(principal_fen, term_months, DailyRate(0), method, drawn_on)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidate = build_schedule(
            principal_fen, term_months, DailyRate(mid * MICRO_STEP_UNITS), method, drawn_on
        )
        if within_apr_cap(candidate):
            lo, best = mid, candidate
        else:
            hi = mid
    if best.rate.units != lo * MICRO_STEP_UNITS:
        best = build_schedule(
            principal_fen, term_months, DailyRate(lo * MICRO_STEP_UNITS), method, drawn_on
        )
    return best
