"""The columnar day close agrees with the domain loan by loan: for any loan after any history of
repayments, closing one more quiet day (or the day its period falls due) as columns gives the
same accumulators, receivables, overdue amounts, DPD and fixed interest as ``advance``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.domain import loan as L
from microloan.domain.classification import is_non_accrual
from microloan.domain.day_books import Receivables, close_day
from microloan.domain.rates import PENALTY_SCALE
from microloan.domain.schedule import Schedule
from microloan.servicing import day_close as dc
from microloan.store import loans as repo

from .strategies import schedules


@st.composite
def histories(draw: st.DrawFn) -> tuple[L.LoanState, bool, bool]:
    """A loan charged through some day t, with repayments on the way, plus flags for how it is
    booked (non-accrual, written off)."""
    s: Schedule = draw(schedules(max_term=12))
    state = L.open_loan(s)
    on = s.drawn_on
    for _ in range(draw(st.integers(0, 4))):
        on = on + timedelta(days=draw(st.integers(0, 70)))
        total = L.payoff(state, on).total_fen
        if total == 0:
            break
        amount = draw(st.one_of(st.just(0), st.integers(1, total)))
        if amount:
            state, _ = L.repay(state, on, amount)
    on = on + timedelta(days=draw(st.integers(0, 400)))
    if draw(st.booleans()):  # stop the day before a due date, so that the next day is one
        later = [i.due_date for i in state.installments if i.due_date > on]
        if later:
            on = later[0] - timedelta(days=1)
    state = L.advance(state, on)
    return state, draw(st.booleans()), draw(st.booleans())


def _row(state: L.LoanState, non_accrual: bool, written_off: bool) -> dict[str, Any]:
    snap = repo.snapshot_columns(state)
    return {
        "loan_id": 1,
        "customer_id": 1,
        "book_id": 1,
        "rate_units": state.rate.units,
        **snap,
        **repo.eod_columns(state),
        "interest_booked_fen": state.interest_accrued_fen,
        "penalty_booked_fen": state.penalty_accrued_fen,
        "interest_recv_fen": 0 if written_off else 700,
        "penalty_recv_fen": 0 if written_off else 30,
        "interest_memo_fen": 5,
        "penalty_memo_fen": 2,
        "non_accrual": non_accrual,
        "tier": "normal",
        "written_off_on": date(2020, 1, 1) if written_off else None,
    }


@settings(deadline=None, max_examples=300)
@given(histories())
def test_one_more_day_as_columns_is_the_domain_advancing_one_day(
    case: tuple[L.LoanState, bool, bool],
) -> None:
    state, non_accrual, written_off = case
    d = state.accrued_through + timedelta(days=1)
    row = _row(state, non_accrual, written_off)
    frame = pl.DataFrame([row], schema=dc.INPUT)
    falls_due = row["next_due"] == d
    if falls_due:
        idx = state.open_period_index()
        assert idx is not None
        inst = state.installments[idx]
        following = (
            state.installments[idx + 1].due_date if idx + 1 < len(state.installments) else None
        )
        due = pl.DataFrame(
            [(1, inst.period, inst.principal_left_fen, inst.interest_paid_fen, following)],
            schema=dc.DUE_INPUT,
            orient="row",
        )
        closed, fixed = dc.close_due(frame, due, d)
    else:
        closed = dc.close_quiet(frame, d)
    got = closed.row(0, named=True)

    after = L.advance(state, d)
    interest = after.interest_accrued_fen - state.interest_accrued_fen
    penalty = after.penalty_accrued_fen - state.penalty_accrued_fen
    receivables, day = close_day(
        Receivables(
            row["interest_recv_fen"],
            row["penalty_recv_fen"],
            row["interest_memo_fen"],
            row["penalty_memo_fen"],
        ),
        interest_fen=interest,
        penalty_fen=penalty,
        off_balance=non_accrual or written_off,
        written_off=written_off,
    )
    dpd = L.days_past_due(after, d)
    want = {
        **repo.snapshot_columns(after),
        **repo.eod_columns(after),
        "interest_booked_fen": after.interest_accrued_fen,
        "penalty_booked_fen": after.penalty_accrued_fen,
        "dpd": dpd,
        "non_accrual": is_non_accrual(dpd),
        "interest_recv_fen": receivables.interest_fen,
        "penalty_recv_fen": receivables.penalty_fen,
        "interest_memo_fen": receivables.off_interest_fen,
        "penalty_memo_fen": receivables.off_penalty_fen,
        "acc_interest_fen": day.interest_fen,
        "acc_penalty_fen": day.penalty_fen,
        "acc_off_interest_fen": day.off_interest_fen,
        "acc_off_penalty_fen": day.off_penalty_fen,
        "written_off": written_off,
    }
    assert {k: got[k] for k in want} == want
    assert got["penalty_rem_units"] < PENALTY_SCALE
    if falls_due:
        idx = next(i for i, x in enumerate(after.installments) if x.due_date == d)
        assert fixed.row(0) == (
            1,
            after.installments[idx].period,
            after.installments[idx].interest_fen,
        )
