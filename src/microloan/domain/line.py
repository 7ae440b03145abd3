"""The revolving credit line (lending rules §2) and repayments across a customer's loans (§5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from microloan.domain.loan import LoanState, advance, current_index, payoff
from microloan.domain.money import FEN_PER_YUAN, format_yuan
from microloan.errors import DrawRefused, InvalidInput, RuleViolation


class LineStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class LineEvent(StrEnum):
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    CLOSE = "close"


# (state, event) → state; a pair not listed is illegal and raises.
LINE_TRANSITIONS: dict[tuple[LineStatus, LineEvent], LineStatus] = {
    (LineStatus.ACTIVE, LineEvent.FREEZE): LineStatus.FROZEN,
    (LineStatus.FROZEN, LineEvent.UNFREEZE): LineStatus.ACTIVE,
    (LineStatus.ACTIVE, LineEvent.CLOSE): LineStatus.CLOSED,
    (LineStatus.FROZEN, LineEvent.CLOSE): LineStatus.CLOSED,
}


def line_transition(status: LineStatus, event: LineEvent, *, open_loans: int) -> LineStatus:
    new = LINE_TRANSITIONS.get((status, event))
    if new is None:
        raise RuleViolation(f"a {status} line cannot {event}", code="line.transition.illegal")
    if new is LineStatus.CLOSED and open_loans:
        raise RuleViolation("a line with open loans cannot be closed", code="line.close.open_loans")
    return new


class LoanStatus(StrEnum):
    PENDING = "pending"  # accepted, awaiting disbursement
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"  # the disbursement failed: nothing lent, the line room released


class LoanEvent(StrEnum):
    DISBURSED = "disbursed"
    DISBURSEMENT_FAILED = "disbursement_failed"
    SETTLED = "settled"


LOAN_TRANSITIONS: dict[tuple[LoanStatus, LoanEvent], LoanStatus] = {
    (LoanStatus.PENDING, LoanEvent.DISBURSED): LoanStatus.OPEN,
    (LoanStatus.PENDING, LoanEvent.DISBURSEMENT_FAILED): LoanStatus.FAILED,
    (LoanStatus.OPEN, LoanEvent.SETTLED): LoanStatus.CLOSED,
}


def loan_transition(status: LoanStatus, event: LoanEvent) -> LoanStatus:
    new = LOAN_TRANSITIONS.get((status, event))
    if new is None:
        raise RuleViolation(
            f"a {status} loan cannot become {event}", code="loan.transition.illegal"
        )
    return new


def check_limit(limit_fen: int, *, min_fen: int = 50_000, max_fen: int = 20_000_000) -> int:
    if not min_fen <= limit_fen <= max_fen or limit_fen % (100 * FEN_PER_YUAN):
        raise InvalidInput(
            f"limit must be a multiple of 100 yuan from {format_yuan(min_fen)} to "
            f"{format_yuan(max_fen)} (got {format_yuan(limit_fen)})",
            field="limit",
        )
    return limit_fen


@dataclass(frozen=True, slots=True)
class LineView:
    status: LineStatus
    limit_fen: int
    outstanding_principal_fen: int
    pending_principal_fen: int
    open_loans: int

    @property
    def available_fen(self) -> int:
        return max(0, self.limit_fen - self.outstanding_principal_fen - self.pending_principal_fen)


@dataclass(frozen=True, slots=True)
class DrawPolicy:
    terms: tuple[int, ...] = (3, 6, 9, 12, 18, 24)
    min_draw_fen: int = 10_000
    max_open_loans: int = 20


def check_draw(
    line: LineView, amount_fen: int, term_months: int, *, overdue: bool, policy: DrawPolicy
) -> None:
    """Raise :class:`DrawRefused` naming the first rule of §2 that the draw breaks."""
    if term_months not in policy.terms:
        offered = ", ".join(str(t) for t in policy.terms)
        raise DrawRefused(
            f"term {term_months} is not offered (offered: {offered} months)",
            code="loan.draw.term_not_offered",
            field="term",
        )
    if amount_fen % FEN_PER_YUAN:
        raise DrawRefused(
            "a draw is a whole number of yuan", code="loan.draw.not_whole_yuan", field="amount"
        )
    if amount_fen < policy.min_draw_fen:
        raise DrawRefused(
            f"the smallest draw is {format_yuan(policy.min_draw_fen)} yuan",
            code="loan.draw.below_minimum",
            field="amount",
        )
    if line.status is not LineStatus.ACTIVE:
        raise DrawRefused(f"the credit line is {line.status}", code="loan.draw.line_not_active")
    if overdue:
        raise DrawRefused(
            "a loan is overdue: repay what is overdue before drawing again",
            code="loan.draw.overdue",
        )
    if line.open_loans >= policy.max_open_loans:
        raise DrawRefused(
            f"at most {policy.max_open_loans} loans may be open at once",
            code="loan.draw.too_many_loans",
        )
    if amount_fen > line.available_fen:
        raise DrawRefused(
            f"amount {format_yuan(amount_fen)} exceeds the available "
            f"{format_yuan(line.available_fen)} yuan",
            code="loan.draw.exceeds_available",
            field="amount",
        )


@dataclass(frozen=True, slots=True)
class OpenLoan:
    loan_id: int
    drawn_on: date
    state: LoanState


@dataclass(frozen=True, slots=True)
class _Stages:
    """One loan's parts of §5's order on a date, and the keys that order loans by stage."""

    loan: OpenLoan
    arrears_fen: int  # stages 1–2: penalty and overdue installments
    current_fen: int  # stage 3: the current installment's interest to date and principal
    future_fen: int  # stage 4: principal after the current installment
    first_unpaid_due: date
    current_due: date

    def part(self, stage: int) -> int:
        return (self.arrears_fen, self.current_fen, self.future_fen)[stage]

    def order(self, stage: int) -> tuple[date, date, int]:
        due = self.first_unpaid_due if stage == 0 else self.current_due
        return (due, self.loan.drawn_on, self.loan.loan_id)


def _stages(loan: OpenLoan, on: date) -> _Stages:
    state = advance(loan.state, on)
    brk = payoff(state, on)
    cur = current_index(state, on)
    current_due = date.max if cur is None else state.installments[cur].due_date
    current = 0
    if cur is not None:
        current = brk.current_interest_fen + state.installments[cur].principal_left_fen
    arrears = brk.penalty_fen + brk.overdue_interest_fen + brk.overdue_principal_fen
    first_unpaid = _earliest_overdue_due(state, on) or current_due
    return _Stages(
        loan, arrears, current, brk.total_fen - arrears - current, first_unpaid, current_due
    )


def split_across_loans(loans: list[OpenLoan], on: date, amount_fen: int) -> dict[int, int]:
    """How much of an "all" repayment each loan takes (§5, stages 2 → 3 → 4 across loans).

    Each loan then applies its share in its own order (penalty, overdue, current, prepayment),
    which gives the same result as the staged order because stage k of every loan is filled
    before stage k+1 of any.
    """
    rows = [_stages(loan, on) for loan in loans]
    shares = {loan.loan_id: 0 for loan in loans}
    left = amount_fen
    for stage in range(3):
        for row in sorted(rows, key=lambda r: r.order(stage)):
            take = min(left, row.part(stage))
            shares[row.loan.loan_id] += take
            left -= take
    assert left == 0, "an amount above the payoff must be refused before splitting"
    return {k: v for k, v in shares.items() if v}


def _earliest_overdue_due(state: LoanState, on: date) -> date | None:
    for inst in state.installments:
        if inst.due_date >= on:
            return None
        if inst.principal_left_fen or inst.interest_left_fen():
            return inst.due_date
    return None
