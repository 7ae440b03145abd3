"""Properties of a loan's life (§4–§6): daily accrual, payoff, repayment order, consistency."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.domain.loan import (
    Allocation,
    Installment,
    LoanState,
    advance,
    current_index,
    days_past_due,
    due_today_fen,
    open_loan,
    payoff,
    repay,
)
from microloan.domain.schedule import Schedule

from .strategies import schedules

FOREVER = timedelta(days=4000)


@settings(deadline=None, max_examples=100)
@given(schedules())
def test_daily_bookings_add_up_to_the_scheduled_interest_when_paid_on_time(s: Schedule) -> None:
    loan = open_loan(s)
    day = s.drawn_on
    booked_before = 0
    for k, due in enumerate(s.due_dates):
        period_bookings = 0
        while day < due:
            day += timedelta(days=1)
            loan = advance(loan, day)
            booked = loan.interest_accrued_fen
            assert booked - booked_before >= 0  # each day's booking
            period_bookings += booked - booked_before
            booked_before = booked
        assert period_bookings == s.interests[k]
        assert loan.installments[k].interest_fen == s.interests[k]
        assert due_today_fen(loan, due) == s.totals[k]
        loan, allocation = repay(loan, due, s.totals[k])
        assert allocation.by_period == ((k + 1, s.interests[k], s.principals[k]),)
        assert allocation.prepaid_principal_fen == allocation.penalty_fen == 0
    assert loan.penalty_units == 0
    assert payoff(loan, s.due_dates[-1] + FOREVER).total_fen == 0


def check_state(loan: LoanState, on: date, principal_repaid_fen: int) -> None:
    """What must hold at any date for any history."""
    assert loan.principal_outstanding_fen + principal_repaid_fen == loan.principal_fen
    assert loan.principal_paid_fen == principal_repaid_fen
    for inst in loan.installments:
        assert inst.principal_fen >= 0
        assert 0 <= inst.principal_paid_fen <= inst.principal_fen
        assert inst.interest_paid_fen >= 0
        assert inst.interest_left_fen(loan.open_interest_fen()) >= 0
    brk = payoff(loan, on)
    assert min(brk.penalty_fen, brk.overdue_interest_fen, brk.overdue_principal_fen) >= 0
    assert min(brk.current_interest_fen, brk.principal_not_due_fen) >= 0
    assert brk.total_fen >= loan.principal_outstanding_fen
    assert brk.principal_fen == loan.principal_outstanding_fen
    overdue = brk.overdue_interest_fen + brk.overdue_principal_fen
    dpd = days_past_due(loan, on)
    assert (dpd > 0) == (overdue > 0)
    if brk.penalty_fen > 0:
        assert overdue > 0
    assert 0 <= due_today_fen(loan, on) <= brk.total_fen


def owed_installments(loan: LoanState, on: date) -> list[Installment]:
    """Overdue installments and the current one, where something of them is still owed."""
    assert loan.accrued_through == on
    cur = current_index(loan, on)
    in_reach = loan.installments if cur is None else loan.installments[: cur + 1]
    open_interest = loan.open_interest_fen()
    return [
        inst
        for inst in in_reach
        if inst.principal_left_fen or inst.interest_left_fen(open_interest)
    ]


def check_order(loan: LoanState, on: date, unsettled_before: list[int], a: Allocation) -> None:
    """§5: penalty, overdue oldest first (interest, then principal), current, prepayment."""
    open_interest = loan.open_interest_fen()
    settled = {
        inst.period
        for inst in loan.installments
        if inst.principal_left_fen == 0 and inst.interest_left_fen(open_interest) == 0
    }
    periods = [period for period, _, _ in a.by_period]
    assert periods == unsettled_before[: len(periods)]  # oldest first, none skipped
    for period in periods[:-1]:
        assert period in settled  # the next one gets money only once this one is paid
    for period, _, principal in a.by_period:
        if principal:
            assert loan.installments[period - 1].interest_left_fen(open_interest) == 0
    if a.by_period:
        assert payoff(loan, on).penalty_fen == 0
    if a.prepaid_principal_fen:
        assert set(unsettled_before) <= settled
        after = payoff(loan, on)
        assert after.penalty_fen == after.overdue_interest_fen == 0
        assert after.overdue_principal_fen == after.current_interest_fen == 0


def next_dates(s: Schedule, on: date) -> st.SearchStrategy[date]:
    """The same day, a few days on, or the next due date (where installments fall due)."""
    later_dues = [due for due in s.due_dates if due > on]
    days_on = st.integers(0, 75).map(lambda days: on + timedelta(days=days))
    return st.one_of(days_on, st.just(later_dues[0])) if later_dues else days_on


@st.composite
def amounts(draw: st.DrawFn, loan: LoanState, on: date) -> int:
    """0 (skip) or an amount a caller may repay: never more than the payoff."""
    total = payoff(loan, on).total_fen
    if total == 0:
        return 0
    due = due_today_fen(loan, on)
    choices = [st.just(0), st.integers(1, min(total, 500)), st.integers(1, total)]
    if due:
        choices += [st.just(due), st.integers(due, total)]
    return draw(st.one_of(choices))


@settings(deadline=None, max_examples=200)
@given(schedules(), st.data())
def test_any_history_of_repayments_stays_consistent(s: Schedule, data: st.DataObject) -> None:
    loan = open_loan(s)
    on = s.drawn_on
    principal_repaid = paid_total = 0
    interest_booked = 0
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        on = data.draw(next_dates(s, on), label="on")
        loan = advance(loan, on)
        assert loan.interest_accrued_fen >= interest_booked  # bookings never go negative
        interest_booked = loan.interest_accrued_fen
        check_state(loan, on, principal_repaid)
        amount = data.draw(amounts(loan, on), label="amount")
        if amount == 0:
            continue
        before = payoff(loan, on)
        penalty_due = before.penalty_fen
        unsettled_before = [i.period for i in owed_installments(loan, on)]
        loan, a = repay(loan, on, amount)
        # The allocation adds up and the payoff falls by exactly the amount, the same day.
        assert a.total_fen == amount
        assert a.interest_fen == sum(i for _, i, _ in a.by_period)
        assert a.principal_fen == sum(p for _, _, p in a.by_period) + a.prepaid_principal_fen
        assert 0 <= a.prepaid_principal_fen <= a.principal_fen
        assert payoff(loan, on).total_fen == before.total_fen - amount
        # Order: nothing reaches a later stage while an earlier one is owed.
        assert a.penalty_fen == min(amount, penalty_due)
        if a.penalty_fen < penalty_due:
            assert a.interest_fen == a.principal_fen == 0
        check_order(loan, on, unsettled_before, a)
        principal_repaid += a.principal_fen
        paid_total += amount
        check_state(loan, on, principal_repaid)

    # Pay the rest at some later date: money in equals principal + interest + penalty, and a
    # loan fully paid stays at 0 forever.
    on += timedelta(days=data.draw(st.integers(0, 400), label="days to final payoff"))
    rest = payoff(loan, on).total_fen
    if rest:
        loan, _ = repay(loan, on, rest)
        paid_total += rest
    loan = advance(loan, on)
    assert paid_total == loan.principal_fen + loan.interest_accrued_fen + loan.penalty_accrued_fen
    assert loan.principal_outstanding_fen == 0
    for later in (
        on + timedelta(days=1),
        max(on, s.due_dates[-1] + timedelta(days=1)),
        on + FOREVER,
    ):
        assert payoff(loan, later).total_fen == 0
        assert days_past_due(loan, later) == 0
        assert advance(loan, later).interest_accrued_fen == loan.interest_accrued_fen
        assert advance(loan, later).penalty_accrued_fen == loan.penalty_accrued_fen
