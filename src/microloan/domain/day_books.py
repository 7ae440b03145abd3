"""A loan's receivables across one closed date (lending rules §7, §8), on and off balance.

Interest and penalty accrue on balance (receivable and income) while a loan accrues, and in
the memo accounts once it is non-accrual (from 91 DPD) or written off. The day's accrual goes
off balance when the loan was non-accrual at the start of the day, the same flag its
repayments of that day used to split what they paid (``books.off_balance_split``); the flag
for the next day then follows the day's DPD.

A repayment may pay interest of the day before the end of day books it, so during the day a
receivable can dip below zero. At the close the loan's amounts are normalised: an on-balance
receivable below zero takes from the memo amount (recognised as income), a memo amount below
zero from the on-balance one, and a written-off loan keeps nothing on balance. Each move is part
of the day's accrual record, so receivables never stay negative and the books still add up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Receivables:
    interest_fen: int = 0  # on balance (1302)
    penalty_fen: int = 0  # on balance (1303)
    off_interest_fen: int = 0  # memo (7001)
    off_penalty_fen: int = 0  # memo (7002)


@dataclass(frozen=True, slots=True)
class DayAccrual:
    """The day's accrual record of a loan: on balance (income) and off balance (memo)."""

    interest_fen: int = 0
    penalty_fen: int = 0
    off_interest_fen: int = 0
    off_penalty_fen: int = 0

    @property
    def is_zero(self) -> bool:
        return not (
            self.interest_fen or self.penalty_fen or self.off_interest_fen or self.off_penalty_fen
        )


@dataclass(frozen=True, slots=True)
class Paid:
    """What the day's repayments took from each place (sums over the loan's repayments)."""

    interest_fen: int = 0  # on balance
    penalty_fen: int = 0
    off_interest_fen: int = 0
    off_penalty_fen: int = 0


NOTHING_PAID = Paid()


def close_day(
    before: Receivables,
    *,
    interest_fen: int,
    penalty_fen: int,
    off_balance: bool,
    written_off: bool,
    paid: Paid = NOTHING_PAID,
    written_off_interest_fen: int = 0,
    written_off_penalty_fen: int = 0,
) -> tuple[Receivables, DayAccrual]:
    """The loan's receivables at the end of the day and the day's accrual record.

    ``interest_fen``/``penalty_fen``: the day's accrual (≥ 0); ``off_balance``: it goes to the
    memo accounts; ``written_off_*``: what a write-off approved that day moved off balance."""
    assert interest_fen >= 0 and penalty_fen >= 0
    on_i, on_p, off_i, off_p = (0, 0, interest_fen, penalty_fen)
    if not off_balance:
        on_i, on_p, off_i, off_p = (interest_fen, penalty_fen, 0, 0)
    recv_i = before.interest_fen + on_i - paid.interest_fen - written_off_interest_fen
    recv_p = before.penalty_fen + on_p - paid.penalty_fen - written_off_penalty_fen
    memo_i = before.off_interest_fen + off_i - paid.off_interest_fen + written_off_interest_fen
    memo_p = before.off_penalty_fen + off_p - paid.off_penalty_fen + written_off_penalty_fen
    shift_i = _shift(recv_i, memo_i, written_off)
    shift_p = _shift(recv_p, memo_p, written_off)
    after = Receivables(recv_i + shift_i, recv_p + shift_p, memo_i - shift_i, memo_p - shift_p)
    assert min(after.interest_fen, after.penalty_fen) >= 0, "a receivable stays negative"
    assert min(after.off_interest_fen, after.off_penalty_fen) >= 0, "a memo amount is negative"
    return after, DayAccrual(on_i + shift_i, on_p + shift_p, off_i - shift_i, off_p - shift_p)


def _shift(on: int, off: int, written_off: bool) -> int:
    """How much moves from the memo amount onto the balance sheet (negative: the other way)."""
    if written_off:
        return -on
    if on < 0:
        return min(-on, max(off, 0))
    if off < 0:
        return -min(-off, on)
    return 0
