"""A loan's life: daily accrual (§4), payoff and repayment order (§5), overdue and penalty (§6)."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from fractions import Fraction

import pytest

from microloan.domain.loan import (
    Allocation,
    LoanState,
    advance,
    days_past_due,
    due_today_fen,
    earliest_unpaid_due,
    installment_amount_fen,
    open_loan,
    payoff,
    repay,
)
from microloan.domain.money import parse_yuan, round_half_up
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method, annuity_fen, build_schedule, interest_fen

# §9: 10,000.00 yuan, 12 months, daily rate 0.0005, drawn 2026-01-31.
P_FEN = 1_000_000
RATE = DailyRate.parse("0.0005")
DRAWN = date(2026, 1, 31)
DUE_1, DUE_2, DUE_3 = date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)
A_FEN = parse_yuan("916.80")


def new_loan(
    method: Method = Method.EQUAL_INSTALLMENT,
    *,
    term: int = 12,
    rate: DailyRate = RATE,
    principal_fen: int = P_FEN,
    drawn: date = DRAWN,
) -> LoanState:
    return open_loan(build_schedule(principal_fen, term, rate, method, drawn))


def pay(state: LoanState, on: date, amount_fen: int) -> tuple[LoanState, Allocation]:
    """Repay as a caller must: never more than the payoff; check the books balance."""
    before = payoff(state, on).total_fen
    assert 0 < amount_fen <= before
    after_state, allocation = repay(state, on, amount_fen)
    assert allocation.total_fen == amount_fen
    assert payoff(after_state, on).total_fen == before - amount_fen
    return after_state, allocation


# -- worked examples of §9 ---------------------------------------------------------------------


def test_payoff_on_march_15_after_paying_period_1_on_its_due_date() -> None:
    loan = new_loan()
    assert due_today_fen(loan, DUE_1) == A_FEN
    loan, allocation = pay(loan, DUE_1, A_FEN)
    assert allocation == Allocation(
        interest_fen=parse_yuan("140.00"),
        principal_fen=parse_yuan("776.80"),
        by_period=((1, parse_yuan("140.00"), parse_yuan("776.80")),),
    )
    assert days_past_due(loan, date(2026, 3, 1)) == 0

    brk = payoff(loan, date(2026, 3, 15))
    assert brk.principal_fen == parse_yuan("9223.20")
    assert brk.current_interest_fen == parse_yuan("69.17")  # 15 days
    assert (brk.penalty_fen, brk.overdue_interest_fen, brk.overdue_principal_fen) == (0, 0, 0)
    assert brk.total_fen == parse_yuan("9292.37")


def test_period_1_left_unpaid_on_march_5() -> None:
    loan = new_loan()
    on = date(2026, 3, 5)
    assert days_past_due(loan, on) == 5
    brk = payoff(loan, on)
    # Penalty on the overdue 916.80 at min(0.00075, 1/1500) for 5 days: 305.6 fen → 3.06.
    # One running total, not a sum of daily roundings (5 × round(61.12) would be 3.05).
    assert brk.penalty_fen == parse_yuan("3.06")
    assert brk.overdue_interest_fen + brk.overdue_principal_fen == A_FEN
    # Interest on the not-yet-due 9,223.20 for the 5 days since 2026-02-28.
    assert brk.current_interest_fen == parse_yuan("23.06")
    assert brk.principal_not_due_fen == parse_yuan("9223.20")
    assert brk.total_fen == parse_yuan("10166.12")
    assert due_today_fen(loan, on) == A_FEN + parse_yuan("3.06")


def test_overdue_starts_the_day_after_the_due_date() -> None:
    loan = new_loan()
    assert days_past_due(loan, DUE_1) == 0
    assert payoff(loan, DUE_1).penalty_fen == 0
    assert days_past_due(loan, DUE_1 + timedelta(days=1)) == 1
    assert payoff(loan, DUE_1 + timedelta(days=1)).penalty_fen == round_half_up(A_FEN, 1500)
    assert earliest_unpaid_due(advance(loan, date(2026, 3, 5))) == DUE_1


def test_a_figure_at_date_t_does_not_wait_for_accrual() -> None:
    loan = new_loan()
    on = date(2026, 3, 5)
    assert loan.accrued_through == DRAWN
    assert payoff(loan, on) == payoff(advance(loan, on), on)
    assert days_past_due(loan, on) == days_past_due(advance(loan, date(2026, 3, 1)), on)


# -- days and when a repayment takes effect ----------------------------------------------------


@pytest.mark.parametrize("method", list(Method))
def test_repaying_on_the_draw_date_costs_nothing(method: Method) -> None:
    loan = new_loan(method)
    brk = payoff(loan, DRAWN)
    assert brk.total_fen == brk.principal_not_due_fen == P_FEN
    loan, allocation = pay(loan, DRAWN, P_FEN)
    assert allocation.interest_fen == allocation.penalty_fen == 0
    assert allocation.principal_fen == P_FEN
    for later in (DRAWN + timedelta(days=1), DUE_1, date(2027, 6, 1)):
        assert payoff(loan, later).total_fen == 0
        assert advance(loan, later).interest_accrued_fen == 0
        assert days_past_due(loan, later) == 0


def test_a_repayment_on_day_t_takes_effect_from_day_t_plus_1() -> None:
    loan = new_loan(Method.EQUAL_PRINCIPAL)
    day_t = date(2026, 2, 10)
    # Days 1..10 February are charged on 10,000.00: 5.00 a day.
    assert payoff(loan, day_t).current_interest_fen == 10 * 500
    loan, allocation = pay(loan, day_t, 500_0 + 833_33)  # current interest, then principal
    assert allocation.by_period == ((1, 5000, 83333),)
    # Day t itself stays charged on the old balance; day t+1 on 9,166.67: 4.583335 a day.
    assert loan.interest_accrued_fen == 5000
    assert advance(loan, day_t + timedelta(days=1)).interest_accrued_fen == 5458  # 5458.3335
    # Period 1 interest = round(5000 + 916667 × 0.0005 × 18) = round(13250.003).
    at_due = advance(loan, DUE_1)
    assert at_due.installments[0].interest_fen == 13250
    assert due_today_fen(loan, DUE_1) == 13250 - 5000


def test_paying_part_of_the_current_principal_early_lowers_its_interest() -> None:
    loan = new_loan(Method.EQUAL_INSTALLMENT)
    loan, _ = pay(loan, DUE_1, A_FEN)
    on = date(2026, 3, 15)
    interest_to_date = payoff(loan, on).current_interest_fen
    loan, allocation = pay(loan, on, interest_to_date + 40_000)
    assert allocation.by_period == ((2, interest_to_date, 40_000),)
    assert allocation.prepaid_principal_fen == 0
    # March 1..15 on 922,320; March 16..31 on 882,320.
    exact = Fraction(922_320 * 15 + 882_320 * 16, 2000)
    expected_interest = round_half_up(exact.numerator, exact.denominator)
    assert advance(loan, DUE_2).installments[1].interest_fen == expected_interest
    assert due_today_fen(loan, DUE_2) == (expected_interest - interest_to_date + 77_384 - 40_000)
    # Later installments are untouched: this was not a prepayment.
    assert [i.principal_fen for i in loan.installments[2:]] == [
        i.principal_fen for i in new_loan().installments[2:]
    ]


# -- penalty interest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "interest", "penalty_10_days"),
    [
        # 1.5 r = 0.0006 < 1/1500: (10,000 + 112.00) × 0.0006 × 10 = 60.672
        ("0.0004", 11_200, 6_067),
        # 1.5 r = 0.00075 > 1/1500: (10,000 + 140.00) × 10 / 1500 = 67.60
        ("0.0005", 14_000, 6_760),
    ],
)
def test_after_the_last_due_date_only_penalty_accrues(
    rate: str, interest: int, penalty_10_days: int
) -> None:
    loan = new_loan(Method.EQUAL_PRINCIPAL, term=1, rate=DailyRate.parse(rate))
    at_due = advance(loan, DUE_1)
    assert at_due.installments[0].interest_fen == interest
    on = DUE_1 + timedelta(days=10)
    later = advance(loan, on)
    assert later.interest_accrued_fen == interest  # no interest after the last due date
    assert later.penalty_accrued_fen == penalty_10_days
    brk = payoff(loan, on)
    assert brk.current_interest_fen == brk.principal_not_due_fen == 0
    assert brk.total_fen == P_FEN + interest + penalty_10_days
    assert days_past_due(loan, on) == 10


def test_overdue_principal_accrues_only_penalty_while_the_rest_accrues_interest() -> None:
    loan = new_loan()
    on = date(2026, 3, 5)
    # Interest counts only the 9,223.20 not yet due; penalty only the overdue 916.80.
    assert advance(loan, on).interest_accrued_fen == 14_000 + interest_fen(922_320, RATE.units, 5)
    assert advance(loan, on).penalty_accrued_fen == round_half_up(A_FEN * 5, 1500)


def test_last_installment_left_unpaid() -> None:
    loan = new_loan()
    for inst in loan.installments[:-1]:
        loan, _ = pay(loan, inst.due_date, due_today_fen(loan, inst.due_date))
    last_due = date(2027, 1, 31)
    assert due_today_fen(loan, last_due) == parse_yuan("924.02")
    accrued = advance(loan, last_due).interest_accrued_fen
    assert accrued == parse_yuan("1008.82")
    on = last_due + timedelta(days=10)
    assert advance(loan, on).interest_accrued_fen == accrued
    assert payoff(loan, on).penalty_fen == round_half_up(92_402 * 10, 1500)  # 616.01
    assert days_past_due(loan, on) == 10


# -- repayment order ---------------------------------------------------------------------------


def test_repayment_order_penalty_then_overdue_oldest_first_then_current_then_prepayment() -> None:
    loan = new_loan()
    on = date(2026, 4, 5)  # periods 1 and 2 overdue, period 3 current
    brk = payoff(loan, on)
    # Penalty: 91,680 for 31 days of March, then 183,360 for 5 days of April, over 1500.
    penalty = round_half_up(91_680 * 31 + 183_360 * 5, 1500)
    assert brk.penalty_fen == penalty == 2506
    assert (brk.overdue_interest_fen, brk.overdue_principal_fen) == (
        14_000 + 14_296,
        77_680 + 77_384,
    )
    current_interest = interest_fen(P_FEN - 77_680 - 77_384, RATE.units, 5)
    assert brk.current_interest_fen == current_interest
    assert days_past_due(loan, on) == 36

    loan, a = pay(loan, on, penalty - 1)
    assert (a.penalty_fen, a.interest_fen, a.principal_fen, a.by_period) == (penalty - 1, 0, 0, ())
    assert payoff(loan, on).penalty_fen == 1

    loan, a = pay(loan, on, 1 + 14_000 + 10)
    assert a.penalty_fen == 1
    assert a.by_period == ((1, 14_000, 10),)  # period 1: interest, then principal

    loan, a = pay(loan, on, 77_670 + 14_296 + 5)
    assert a.penalty_fen == 0
    assert a.by_period == ((1, 0, 77_670), (2, 14_296, 5))  # oldest first
    assert days_past_due(loan, on) == (on - DUE_2).days == 5

    loan, a = pay(loan, on, 77_379 + current_interest + 100)
    assert a.by_period == ((2, 0, 77_379), (3, current_interest, 100))  # then the current one
    assert a.prepaid_principal_fen == 0
    assert days_past_due(loan, on) == 0

    current_principal_left = loan.installments[2].principal_left_fen
    loan, a = pay(loan, on, current_principal_left + 50_000)
    assert a.by_period == ((3, 0, current_principal_left),)
    assert a.prepaid_principal_fen == 50_000  # only money beyond the current installment
    assert a.principal_fen == current_principal_left + 50_000


def test_penalty_is_paid_before_anything_else_even_when_small() -> None:
    loan = new_loan()
    on = date(2026, 3, 2)
    penalty = payoff(loan, on).penalty_fen
    assert penalty == round_half_up(91_680 * 2, 1500) == 122
    loan, a = pay(loan, on, 200)
    assert (a.penalty_fen, a.interest_fen, a.by_period) == (122, 78, ((1, 78, 0),))


# -- prepayment re-amortisation ----------------------------------------------------------------


def pay_each_installment_on_time(loan: LoanState) -> tuple[LoanState, list[int]]:
    paid: list[int] = []
    for inst in list(loan.installments):
        if inst.due_date < loan.accrued_through:
            continue  # already behind us
        amount = due_today_fen(loan, inst.due_date)
        if amount == 0:
            continue  # already paid
        paid.append(amount)
        loan, _ = pay(loan, inst.due_date, amount)
    return loan, paid


def test_equal_installment_prepayment_keeps_due_dates_and_lowers_later_installments() -> None:
    loan = new_loan()
    dues = [i.due_date for i in loan.installments]
    loan, a = pay(loan, DUE_1, A_FEN + 200_000)
    assert a.by_period == ((1, 14_000, 77_680),)
    assert a.prepaid_principal_fen == 200_000

    remaining = P_FEN - 77_680 - 200_000
    new_a = annuity_fen(remaining, RATE.units, 11)  # A recomputed over periods 2..12
    assert new_a < A_FEN
    assert installment_amount_fen(loan) == new_a
    assert [i.due_date for i in loan.installments] == dues
    assert sum(i.principal_fen for i in loan.installments[1:]) == remaining
    assert loan.installments[1].principal_fen == new_a - interest_fen(remaining, RATE.units, 31)

    _, paid = pay_each_installment_on_time(loan)
    assert len(paid) == 11
    assert set(paid[:-1]) == {new_a}  # the later installments, all lower and level again
    assert paid[-1] < A_FEN


def test_equal_installment_prepayment_between_due_dates() -> None:
    loan = new_loan()
    loan, _ = pay(loan, DUE_1, A_FEN)
    on = date(2026, 3, 15)
    interest_to_date = payoff(loan, on).current_interest_fen  # 69.17
    loan, a = pay(loan, on, interest_to_date + 77_384 + 100_000)
    assert a.by_period == ((2, interest_to_date, 77_384),)
    assert a.prepaid_principal_fen == 100_000
    remaining = P_FEN - 77_680 - 77_384 - 100_000  # over periods 3..12, from the 31 March
    new_a = annuity_fen(remaining, RATE.units, 10)
    assert [i.principal_fen for i in loan.installments[:2]] == [77_680, 77_384]
    assert loan.installments[2].principal_fen == new_a - interest_fen(remaining, RATE.units, 30)
    assert sum(i.principal_fen for i in loan.installments[2:]) == remaining
    # Period 2 still owes the interest of 16 more days on the lowered principal.
    exact = Fraction(922_320 * 15 + remaining * 16, 2000)
    assert due_today_fen(loan, DUE_2) == (
        round_half_up(exact.numerator, exact.denominator) - interest_to_date
    )
    _, paid = pay_each_installment_on_time(loan)
    assert set(paid[1:-1]) == {new_a}


@pytest.mark.parametrize(
    ("on", "current_interest"),
    [(DUE_1, 14_000), (date(2026, 2, 10), 5_000)],
)
def test_equal_principal_prepayment_spreads_the_rest_over_later_periods(
    on: date, current_interest: int
) -> None:
    loan = new_loan(Method.EQUAL_PRINCIPAL)
    dues = [i.due_date for i in loan.installments]
    loan, a = pay(loan, on, current_interest + 83_333 + 100_000)
    assert a.by_period == ((1, current_interest, 83_333),)
    assert a.prepaid_principal_fen == 100_000
    remaining = P_FEN - 83_333 - 100_000  # 816,667 over 11 periods
    assert [i.principal_fen for i in loan.installments] == (
        [83_333] + [remaining // 11] * 10 + [remaining - 10 * (remaining // 11)]
    )
    assert remaining // 11 == 74_242 and remaining - 10 * 74_242 == 74_247
    assert [i.due_date for i in loan.installments] == dues


# -- full repayment, views, purity -------------------------------------------------------------


@pytest.mark.parametrize("method", list(Method))
def test_a_loan_paid_off_stays_paid_off(method: Method) -> None:
    loan = new_loan(method)
    loan, _ = pay(loan, DUE_1, due_today_fen(loan, DUE_1))
    on = date(2026, 3, 15)
    total = payoff(loan, on).total_fen
    loan, _ = pay(loan, on, total)
    for later in (on, on + timedelta(days=1), DUE_2, date(2027, 1, 31), date(2030, 1, 1)):
        assert payoff(loan, later).total_fen == 0
        assert days_past_due(loan, later) == 0
        assert due_today_fen(loan, later) == 0
    settled = advance(loan, date(2030, 1, 1))
    assert settled.principal_outstanding_fen == 0
    assert settled.principal_paid_fen == P_FEN
    assert settled.penalty_accrued_fen == 0
    assert settled.interest_paid_fen == settled.interest_accrued_fen
    assert earliest_unpaid_due(settled) is None


def test_principal_paid_counts_prepayments() -> None:
    loan = new_loan()
    loan, _ = pay(loan, DUE_1, A_FEN + 200_000)
    assert loan.principal_paid_fen == 77_680 + 200_000
    assert loan.principal_outstanding_fen + loan.principal_paid_fen == P_FEN


def test_functions_do_not_mutate_their_argument() -> None:
    loan = new_loan()
    before = copy.deepcopy(loan)
    on = date(2026, 3, 5)
    advance(loan, on)
    payoff(loan, on)
    days_past_due(loan, on)
    due_today_fen(loan, on)
    repay(loan, on, 50_000)
    assert loan == before


def test_repaying_more_than_the_payoff_is_a_programmer_error() -> None:
    loan = new_loan()
    with pytest.raises(AssertionError):
        repay(loan, DUE_1, payoff(loan, DUE_1).total_fen + 1)
    with pytest.raises(AssertionError):
        repay(loan, DUE_1, 0)


def test_installment_amount_only_for_equal_installment() -> None:
    assert installment_amount_fen(new_loan()) == A_FEN
    assert installment_amount_fen(new_loan(Method.EQUAL_PRINCIPAL)) is None
