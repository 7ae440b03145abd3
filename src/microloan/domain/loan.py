"""A loan's life after disbursement (lending rules §4–§6), as pure functions on :class:`LoanState`.

Time moves in whole days. ``accrued_through`` is the last day whose interest and penalty have
been charged; day t is charged on the balances at the start of day t, so a repayment on day t
is applied *after* :func:`advance` has charged day t, and takes effect from day t+1.

Exact accumulators (never rounded in between):
- ``period_interest_units``: interest of the open period, in fen × RATE_SCALE;
  booked so far = round(that / RATE_SCALE). It is fixed into the installment at its due date.
- ``penalty_units``: the life-long penalty running total, in fen × PENALTY_SCALE.

Functions never mutate their argument: they copy, change the copy and return it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from microloan.domain.money import round_half_up
from microloan.domain.rates import PENALTY_SCALE, RATE_SCALE, DailyRate
from microloan.domain.schedule import Method, Schedule, amortise, annuity_fen


@dataclass(slots=True)
class Installment:
    period: int
    due_date: date
    principal_fen: int
    interest_fen: int | None = None  # fixed at the end of its due date
    principal_paid_fen: int = 0
    interest_paid_fen: int = 0

    @property
    def principal_left_fen(self) -> int:
        return self.principal_fen - self.principal_paid_fen

    def interest_left_fen(self, open_interest_fen: int = 0) -> int:
        fixed = self.interest_fen if self.interest_fen is not None else open_interest_fen
        return fixed - self.interest_paid_fen


@dataclass(slots=True)
class LoanState:
    principal_fen: int
    rate: DailyRate
    method: Method
    drawn_on: date
    installments: list[Installment]
    accrued_through: date
    period_interest_units: int = 0
    penalty_units: int = 0
    penalty_paid_fen: int = 0

    def clone(self) -> LoanState:
        """A copy sharing nothing mutable (cheaper than ``copy.deepcopy``)."""
        return LoanState(
            self.principal_fen,
            self.rate,
            self.method,
            self.drawn_on,
            [
                Installment(
                    i.period,
                    i.due_date,
                    i.principal_fen,
                    i.interest_fen,
                    i.principal_paid_fen,
                    i.interest_paid_fen,
                )
                for i in self.installments
            ],
            self.accrued_through,
            self.period_interest_units,
            self.penalty_units,
            self.penalty_paid_fen,
        )

    # -- views ---------------------------------------------------------------------------------
    def open_period_index(self) -> int | None:
        """Index of the period still accruing (due date after ``accrued_through``)."""
        for i, inst in enumerate(self.installments):
            if inst.due_date > self.accrued_through:
                return i
        return None

    def open_interest_fen(self) -> int:
        return round_half_up(self.period_interest_units, RATE_SCALE)

    @property
    def penalty_accrued_fen(self) -> int:
        return round_half_up(self.penalty_units, PENALTY_SCALE)

    @property
    def penalty_due_fen(self) -> int:
        return self.penalty_accrued_fen - self.penalty_paid_fen

    @property
    def principal_outstanding_fen(self) -> int:
        return sum(i.principal_left_fen for i in self.installments)

    @property
    def interest_accrued_fen(self) -> int:
        """All interest recognised so far: fixed periods plus the open one's round(E)."""
        fixed = sum(i.interest_fen for i in self.installments if i.interest_fen is not None)
        return fixed + self.open_interest_fen()

    @property
    def interest_paid_fen(self) -> int:
        return sum(i.interest_paid_fen for i in self.installments)

    @property
    def principal_paid_fen(self) -> int:
        """All principal repaid, prepayments included.

        A prepayment lowers the later installments' ``principal_fen`` rather than adding to
        their ``principal_paid_fen``, so summing the installments would miss it.
        """
        return self.principal_fen - self.principal_outstanding_fen


@dataclass(frozen=True, slots=True)
class Allocation:
    """Where one repayment went, in the order of §5."""

    penalty_fen: int = 0
    interest_fen: int = 0
    principal_fen: int = 0
    prepaid_principal_fen: int = 0  # part of principal_fen that was stage 4
    by_period: tuple[tuple[int, int, int], ...] = field(default=())  # (period, interest, principal)

    @property
    def total_fen(self) -> int:
        return self.penalty_fen + self.interest_fen + self.principal_fen


def open_loan(schedule: Schedule) -> LoanState:
    """The state right after disbursement on ``schedule.drawn_on``: nothing charged yet."""
    installments = [
        Installment(k + 1, due, principal)
        for k, (due, principal) in enumerate(
            zip(schedule.due_dates, schedule.principals, strict=True)
        )
    ]
    return LoanState(
        schedule.principal_fen,
        schedule.rate,
        schedule.method,
        schedule.drawn_on,
        installments,
        accrued_through=schedule.drawn_on,
    )


def advance(state: LoanState, through: date) -> LoanState:
    """Charge every day up to and including ``through``; segment by segment between due dates."""
    if through <= state.accrued_through:
        return state
    s = state.clone()
    rate_units, penalty_rate = s.rate.units, s.rate.penalty_units
    while s.accrued_through < through:
        idx = s.open_period_index()
        seg_end = through if idx is None else min(through, s.installments[idx].due_date)
        days = (seg_end - s.accrued_through).days
        split = len(s.installments) if idx is None else idx
        performing = sum(i.principal_left_fen for i in s.installments[split:])
        overdue = sum(i.principal_left_fen + i.interest_left_fen() for i in s.installments[:split])
        s.period_interest_units += performing * rate_units * days
        s.penalty_units += overdue * penalty_rate * days
        s.accrued_through = seg_end
        if idx is not None and seg_end == s.installments[idx].due_date:
            s.installments[idx].interest_fen = s.open_interest_fen()
            s.period_interest_units = 0
    return s


def current_index(state: LoanState, on: date) -> int | None:
    """The current installment on ``on``: the first whose due date is ``on`` or later."""
    for i, inst in enumerate(state.installments):
        if inst.due_date >= on:
            return i
    return None


@dataclass(frozen=True, slots=True)
class PayoffBreakdown:
    penalty_fen: int
    overdue_interest_fen: int
    overdue_principal_fen: int
    current_interest_fen: int
    principal_not_due_fen: int

    @property
    def interest_fen(self) -> int:
        return self.overdue_interest_fen + self.current_interest_fen

    @property
    def principal_fen(self) -> int:
        return self.overdue_principal_fen + self.principal_not_due_fen

    @property
    def total_fen(self) -> int:
        return self.penalty_fen + self.interest_fen + self.principal_fen


def payoff(state: LoanState, on: date) -> PayoffBreakdown:
    """Payoff at date ``on`` (§5), counting every day through ``on``."""
    assert on >= state.accrued_through, "figures are never asked for a date already passed"
    s = advance(state, on)
    cur = current_index(s, on)
    split = len(s.installments) if cur is None else cur
    overdue = s.installments[:split]
    current_interest = (
        0 if cur is None else s.installments[cur].interest_left_fen(s.open_interest_fen())
    )
    return PayoffBreakdown(
        penalty_fen=s.penalty_due_fen,
        overdue_interest_fen=sum(i.interest_left_fen() for i in overdue),
        overdue_principal_fen=sum(i.principal_left_fen for i in overdue),
        current_interest_fen=current_interest,
        principal_not_due_fen=sum(i.principal_left_fen for i in s.installments[split:]),
    )


def earliest_unpaid_due(state: LoanState) -> date | None:
    """Due date of the first installment not settled; None when nothing is owed at all."""
    for inst in state.installments:
        settled = (
            inst.principal_left_fen == 0
            and inst.interest_fen is not None
            and inst.interest_left_fen() == 0
        )
        if not settled:
            return inst.due_date
    return None


def days_past_due(state: LoanState, on: date) -> int:
    """DPD at ``on``: ``on`` − the earliest due date before ``on`` with something unpaid."""
    first = earliest_unpaid_due(advance(state, on))
    return (on - first).days if first is not None and first < on else 0


def due_today_fen(state: LoanState, on: date) -> int:
    """What auto-debit asks on ``on``: penalty, everything overdue, and today's installment."""
    s = advance(state, on)
    cur = current_index(s, on)
    brk = payoff(s, on)
    owed = brk.penalty_fen + brk.overdue_interest_fen + brk.overdue_principal_fen
    if cur is not None and s.installments[cur].due_date == on:
        inst = s.installments[cur]
        owed += inst.interest_left_fen(s.open_interest_fen()) + inst.principal_left_fen
    return owed


def repay(state: LoanState, on: date, amount_fen: int) -> tuple[LoanState, Allocation]:
    """Apply ``amount_fen`` on ``on`` in the order of §5. The caller checks it ≤ payoff."""
    assert amount_fen > 0
    assert on >= state.accrued_through, "a repayment cannot be dated before days already charged"
    s = advance(state, on)
    if s is state:
        s = state.clone()
    total = payoff(s, on).total_fen
    assert amount_fen <= total, "repayment above payoff must be refused before this point"
    left = amount_fen
    penalty = min(left, s.penalty_due_fen)
    s.penalty_paid_fen += penalty
    left -= penalty
    cur = current_index(s, on)
    split = len(s.installments) if cur is None else cur + 1
    open_interest = s.open_interest_fen()
    by_period: list[tuple[int, int, int]] = []
    interest_paid = principal_paid = 0
    for inst in s.installments[:split]:  # stages 2 and 3: overdue oldest first, then current
        if left == 0:
            break
        i_part = min(left, inst.interest_left_fen(open_interest))
        left -= i_part
        p_part = min(left, inst.principal_left_fen)
        left -= p_part
        if i_part or p_part:
            inst.interest_paid_fen += i_part
            inst.principal_paid_fen += p_part
            by_period.append((inst.period, i_part, p_part))
            interest_paid += i_part
            principal_paid += p_part
    prepaid = left
    if prepaid:
        assert cur is not None
        _prepay(s, cur, prepaid)
        principal_paid += prepaid
    return s, Allocation(penalty, interest_paid, principal_paid, prepaid, tuple(by_period))


def _prepay(s: LoanState, cur: int, amount_fen: int) -> None:
    """Stage 4: lower the principal after the current installment and re-amortise (§5)."""
    future = s.installments[cur + 1 :]
    assert future and all(i.principal_paid_fen == 0 for i in future)
    remaining = sum(i.principal_fen for i in future) - amount_fen
    assert remaining >= 0
    days = [
        (inst.due_date - prev.due_date).days
        for prev, inst in zip(s.installments[cur:], future, strict=False)
    ]
    principals, _ = amortise(remaining, s.rate.units, s.method, days)
    for inst, principal in zip(future, principals, strict=True):
        inst.principal_fen = principal


def installment_amount_fen(state: LoanState) -> int | None:
    """For equal installment: the level installment A of the remaining future periods."""
    if state.method is not Method.EQUAL_INSTALLMENT:
        return None
    future = [i for i in state.installments if i.interest_fen is None]
    if not future:
        return None
    return annuity_fen(sum(i.principal_left_fen for i in future), state.rate.units, len(future))


@dataclass(frozen=True, slots=True)
class SnapshotView:
    """What the next day's accrual needs from a state, without its installments.

    Day t+1 charges interest on ``performing_fen`` (principal of periods due after t) and
    penalty on ``overdue_fen`` (principal and interest left of periods due on or before t);
    ``next_due`` is the due date of the period still accruing, ``overdue_since`` the earliest
    passed due date with something unpaid (DPD at t+1 = t+1 − it)."""

    performing_fen: int
    overdue_fen: int
    next_due: date | None
    overdue_since: date | None
    principal_fen: int


def snapshot_view(state: LoanState) -> SnapshotView:
    idx = state.open_period_index()
    split = len(state.installments) if idx is None else idx
    past = state.installments[:split]
    since = next(
        (i.due_date for i in past if i.principal_left_fen > 0 or i.interest_left_fen() > 0), None
    )
    return SnapshotView(
        performing_fen=sum(i.principal_left_fen for i in state.installments[split:]),
        overdue_fen=sum(i.principal_left_fen + i.interest_left_fen() for i in past),
        next_due=None if idx is None else state.installments[idx].due_date,
        overdue_since=since,
        principal_fen=state.principal_outstanding_fen,
    )
