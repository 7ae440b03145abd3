"""Schedules (§3), APR (§1) and the 24 % APR cap, against the worked examples of §9."""

from __future__ import annotations

from datetime import date

import pytest

from microloan.domain.money import parse_yuan
from microloan.domain.rates import MICRO_STEP_UNITS, DailyRate, format_percent_bp100
from microloan.domain.schedule import (
    APR_CAP_BP100,
    Method,
    Schedule,
    annuity_fen,
    apr_bp100,
    build_schedule,
    capped_schedule,
    equal_principal_parts,
    interest_fen,
    within_apr_cap,
)
from microloan.errors import InvalidInput

# §9: 10,000.00 yuan, 12 months, daily rate 0.0005, drawn 2026-01-31.
P_FEN = 1_000_000
TERM = 12
RATE = DailyRate.parse("0.0005")
DRAWN = date(2026, 1, 31)

# Reference schedules. Rows marked §9 are quoted by the rulebook; the others follow from §3.
EQUAL_INSTALLMENT = """
    period  due date    days  principal  interest
    1       2026-02-28  28    776.80     140.00
    2       2026-03-31  31    773.84     142.96
    3       2026-04-30  30    790.06     126.74
    4       2026-05-31  31    798.08     118.72
    5       2026-06-30  30    813.88     102.92
    6       2026-07-31  31    823.07      93.73
    7       2026-08-31  31    835.82      80.98
    8       2026-09-30  30    850.97      65.83
    9       2026-10-31  31    861.97      54.83
    10      2026-11-30  30    876.67      40.13
    11      2026-12-31  31    888.92      27.88
    12      2027-01-31  31    909.92      14.10
"""

EQUAL_PRINCIPAL = """
    period  due date    days  principal  interest
    1       2026-02-28  28    833.33     140.00
    2       2026-03-31  31    833.33     142.08
    3       2026-04-30  30    833.33     125.00
    4       2026-05-31  31    833.33     116.25
    5       2026-06-30  30    833.33     100.00
    6       2026-07-31  31    833.33      90.42
    7       2026-08-31  31    833.33      77.50
    8       2026-09-30  30    833.33      62.50
    9       2026-10-31  31    833.33      51.67
    10      2026-11-30  30    833.33      37.50
    11      2026-12-31  31    833.33      25.83
    12      2027-01-31  31    833.37      12.92
"""


def parse_table(text: str) -> list[tuple[int, date, int, int, int]]:
    """Rows of (period, due date, days, principal fen, interest fen) from a readable table."""
    lines = [line.split() for line in text.strip().splitlines()[1:]]
    return [
        (int(k), date.fromisoformat(due), int(days), parse_yuan(p), parse_yuan(i))
        for k, due, days, p, i in lines
    ]


def rows(schedule: Schedule) -> list[tuple[int, date, int, int, int]]:
    return [
        (k + 1, due, days, p, i)
        for k, (due, days, p, i) in enumerate(
            zip(
                schedule.due_dates,
                schedule.days,
                schedule.principals,
                schedule.interests,
                strict=True,
            )
        )
    ]


@pytest.fixture
def installment_schedule() -> Schedule:
    return build_schedule(P_FEN, TERM, RATE, Method.EQUAL_INSTALLMENT, DRAWN)


@pytest.fixture
def principal_schedule() -> Schedule:
    return build_schedule(P_FEN, TERM, RATE, Method.EQUAL_PRINCIPAL, DRAWN)


# -- equal installment (等额本息) ----------------------------------------------------------------


def test_equal_installment_reference_schedule(installment_schedule: Schedule) -> None:
    assert rows(installment_schedule) == parse_table(EQUAL_INSTALLMENT)


def test_equal_installment_section_9_figures(installment_schedule: Schedule) -> None:
    s = installment_schedule
    assert annuity_fen(P_FEN, RATE.units, TERM) == parse_yuan("916.80")
    assert (s.due_dates[0], s.days[0]) == (date(2026, 2, 28), 28)
    assert (s.principals[0], s.interests[0]) == (parse_yuan("776.80"), parse_yuan("140.00"))
    assert (s.due_dates[1], s.days[1]) == (date(2026, 3, 31), 31)
    assert (s.principals[1], s.interests[1]) == (parse_yuan("773.84"), parse_yuan("142.96"))
    assert s.due_dates[11] == date(2027, 1, 31)
    assert (s.principals[11], s.interests[11]) == (parse_yuan("909.92"), parse_yuan("14.10"))
    assert s.totals[11] == parse_yuan("924.02")
    assert s.total_interest_fen == parse_yuan("1008.82")


def test_equal_installment_is_level_but_for_the_last(installment_schedule: Schedule) -> None:
    assert set(installment_schedule.totals[:-1]) == {parse_yuan("916.80")}
    assert sum(installment_schedule.principals) == P_FEN


# -- equal principal (等额本金) -----------------------------------------------------------------


def test_equal_principal_reference_schedule(principal_schedule: Schedule) -> None:
    assert rows(principal_schedule) == parse_table(EQUAL_PRINCIPAL)


def test_equal_principal_section_9_figures(principal_schedule: Schedule) -> None:
    s = principal_schedule
    assert s.principals[:11] == (parse_yuan("833.33"),) * 11
    assert s.principals[11] == parse_yuan("833.37")
    assert s.interests[0] == parse_yuan("140.00")
    assert s.interests[1] == parse_yuan("142.08")
    assert s.total_interest_fen == parse_yuan("981.67")
    assert sum(s.principals) == P_FEN


def test_each_period_interest_is_balance_times_rate_times_days() -> None:
    for method in Method:
        s = build_schedule(P_FEN, TERM, RATE, method, DRAWN)
        balance = P_FEN
        for k in range(TERM):
            # round(B × r × days), half up, with B × r × days computed exactly.
            exact_times_2 = 2 * balance * 5 * s.days[k]  # × 10_000 (r = 5/10_000)
            assert s.interests[k] == (exact_times_2 + 10_000) // 20_000
            balance -= s.principals[k]
        assert balance == 0


def test_interest_rounds_half_up() -> None:
    # 1 fen × 0.5 a day → exactly half a fen, rounded up; 0.4999... fen rounds down.
    assert interest_fen(1, 5_000_000_000, 1) == 1
    assert interest_fen(1, 4_999_999_999, 1) == 0
    assert interest_fen(922_320, RATE.units, 15) == parse_yuan("69.17")  # 69.174


def test_equal_principal_parts() -> None:
    assert equal_principal_parts(1_000_000, 12) == [83333] * 11 + [83337]
    assert equal_principal_parts(10, 3) == [3, 3, 4]
    assert equal_principal_parts(2, 3) == [0, 0, 2]
    assert equal_principal_parts(500, 1) == [500]


def test_annuity_with_no_interest_is_p_over_n() -> None:
    assert annuity_fen(1_000_000, 0, 12) == 83333
    assert annuity_fen(1_000_000, 0, 3) == 333333


def test_method_parse() -> None:
    assert Method.parse(" Equal_Principal ") is Method.EQUAL_PRINCIPAL
    assert Method.parse("equal_installment") is Method.EQUAL_INSTALLMENT
    with pytest.raises(InvalidInput) as caught:
        Method.parse("balloon")
    assert caught.value.field == "method"


# -- APR ---------------------------------------------------------------------------------------


def test_apr_of_the_section_9_loans(
    installment_schedule: Schedule, principal_schedule: Schedule
) -> None:
    installment_apr = apr_bp100(P_FEN, installment_schedule.totals)
    principal_apr = apr_bp100(P_FEN, principal_schedule.totals)
    assert format_percent_bp100(installment_apr) == "18.12%"
    assert format_percent_bp100(principal_apr) == "18.11%"
    assert format_percent_bp100(RATE.annual_simple_bp100()) == "18.00%"
    assert within_apr_cap(installment_schedule)
    assert within_apr_cap(principal_schedule)


def test_apr_of_a_one_month_loan_is_its_monthly_cost_times_12() -> None:
    # 10,000 for 31 days at 0.0005 → 155.00 interest; monthly IRR 1.55 % → APR 18.60 %.
    s = build_schedule(P_FEN, 1, RATE, Method.EQUAL_PRINCIPAL, date(2026, 7, 1))
    assert s.totals == (1_015_500,)
    assert apr_bp100(P_FEN, s.totals) == 1860


def test_apr_of_a_free_loan_is_zero() -> None:
    assert apr_bp100(P_FEN, (P_FEN // 4,) * 4) == 0


# -- the 24 % APR cap --------------------------------------------------------------------------

TOP_RATE = DailyRate.parse("0.00066")
STEP = DailyRate(MICRO_STEP_UNITS)


@pytest.mark.parametrize(
    ("term", "method", "drawn", "uncapped_apr", "capped_rate"),
    [
        # One month of 31 days at 0.066 % a day is 2.046 % a month: APR 24.55 %.
        (1, Method.EQUAL_PRINCIPAL, date(2026, 7, 1), 2455, "0.000645"),
        (12, Method.EQUAL_INSTALLMENT, date(2026, 7, 1), 2418, "0.000655"),
        (36, Method.EQUAL_PRINCIPAL, date(2026, 12, 31), 2407, "0.000658"),
    ],
)
def test_cap_lowers_the_rate_to_the_highest_micro_step_within_24_percent(
    term: int, method: Method, drawn: date, uncapped_apr: int, capped_rate: str
) -> None:
    uncapped = build_schedule(P_FEN, term, TOP_RATE, method, drawn)
    assert apr_bp100(P_FEN, uncapped.totals) == uncapped_apr > APR_CAP_BP100
    assert not within_apr_cap(uncapped)

    capped = capped_schedule(P_FEN, term, TOP_RATE, method, drawn)
    assert capped.rate == DailyRate.parse(capped_rate)
    assert capped.rate.units % MICRO_STEP_UNITS == 0
    assert within_apr_cap(capped)
    assert apr_bp100(P_FEN, capped.totals) <= APR_CAP_BP100
    assert capped == build_schedule(P_FEN, term, capped.rate, method, drawn)

    one_step_up = build_schedule(
        P_FEN, term, DailyRate(capped.rate.units + STEP.units), method, drawn
    )
    assert not within_apr_cap(one_step_up)
    assert apr_bp100(P_FEN, one_step_up.totals) >= APR_CAP_BP100


def test_cap_leaves_a_schedule_within_it_alone() -> None:
    for method in Method:
        plain = build_schedule(P_FEN, TERM, TOP_RATE, method, DRAWN)
        assert within_apr_cap(plain)
        assert capped_schedule(P_FEN, TERM, TOP_RATE, method, DRAWN) == plain


def test_cap_with_a_rate_off_the_micro_grid_tries_the_step_just_below_it() -> None:
    # 0.0006455 breaks the cap for this loan but 0.000645 keeps it: that is the answer, not
    # 0.000644 (regression: the search used to treat floor(rate) as known to break the cap).
    drawn = date(2026, 7, 1)
    rate = DailyRate.parse("0.0006455")
    assert not within_apr_cap(build_schedule(P_FEN, 1, rate, Method.EQUAL_PRINCIPAL, drawn))
    capped = capped_schedule(P_FEN, 1, rate, Method.EQUAL_PRINCIPAL, drawn)
    assert capped.rate == DailyRate.parse("0.000645")
    assert within_apr_cap(capped)


@pytest.mark.parametrize("term", [1, 3, 6, 12, 18, 24, 36])
@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("drawn", [date(2026, 1, 1), date(2026, 7, 1), date(2026, 12, 31)])
def test_within_apr_cap_agrees_with_the_rounded_apr(term: int, method: Method, drawn: date) -> None:
    for rate in (DailyRate.parse("0.00065"), DailyRate.parse("0.000655"), TOP_RATE):
        s = build_schedule(P_FEN, term, rate, method, drawn)
        apr = apr_bp100(P_FEN, s.totals)
        # Exact IRR ≤ 2 % implies the rounded APR ≤ 24.00 %; above it, the APR rounds to ≥ 24.00.
        if within_apr_cap(s):
            assert apr <= APR_CAP_BP100
        else:
            assert apr >= APR_CAP_BP100
