"""Double-entry books (lending rules §8): accounts, balanced entries, one book per funder.

Amounts are signed fen: debit positive, credit negative; every entry sums to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from microloan.domain.loan import Allocation

PLATFORM_BOOK = "platform"


class Account(StrEnum):
    """Chart of accounts. Asset accounts carry debit balances, income accounts credit ones."""

    SETTLEMENT = "1002"  # 清算资金 funds at the payment rail
    LOAN_PRINCIPAL = "1301"  # 贷款本金 principal receivable
    INTEREST_RECEIVABLE = "1302"  # 应收利息
    PENALTY_RECEIVABLE = "1303"  # 应收罚息
    INTEREST_INCOME = "6011"  # 利息收入
    PENALTY_INCOME = "6012"  # 罚息收入
    REWARD_PAYABLE = "2241"  # 应付红包 red-envelope rewards owed to customers
    MARKETING_EXPENSE = "6601"  # 营销费用

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Account.SETTLEMENT: "清算资金 Settlement funds",
    Account.LOAN_PRINCIPAL: "贷款本金 Loan principal",
    Account.INTEREST_RECEIVABLE: "应收利息 Interest receivable",
    Account.PENALTY_RECEIVABLE: "应收罚息 Penalty receivable",
    Account.INTEREST_INCOME: "利息收入 Interest income",
    Account.PENALTY_INCOME: "罚息收入 Penalty income",
    Account.REWARD_PAYABLE: "应付红包 Rewards payable",
    Account.MARKETING_EXPENSE: "营销费用 Marketing expense",
}


class EntryKind(StrEnum):
    DISBURSEMENT = "disbursement"
    REPAYMENT = "repayment"
    ACCRUAL = "accrual"
    REWARD = "reward"


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    amount_fen: int  # debit > 0, credit < 0


@dataclass(frozen=True, slots=True)
class Entry:
    kind: EntryKind
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        assert sum(p.amount_fen for p in self.postings) == 0, f"unbalanced entry {self}"
        assert all(p.amount_fen != 0 for p in self.postings)


def _entry(kind: EntryKind, *pairs: tuple[Account, int]) -> Entry:
    return Entry(kind, tuple(Posting(a, v) for a, v in pairs if v != 0))


def disbursement_entry(principal_fen: int) -> Entry:
    assert principal_fen > 0
    return _entry(
        EntryKind.DISBURSEMENT,
        (Account.LOAN_PRINCIPAL, principal_fen),
        (Account.SETTLEMENT, -principal_fen),
    )


def repayment_entry(allocation: Allocation) -> Entry:
    assert allocation.total_fen > 0
    return _entry(
        EntryKind.REPAYMENT,
        (Account.SETTLEMENT, allocation.total_fen),
        (Account.PENALTY_RECEIVABLE, -allocation.penalty_fen),
        (Account.INTEREST_RECEIVABLE, -allocation.interest_fen),
        (Account.LOAN_PRINCIPAL, -allocation.principal_fen),
    )


def accrual_entry(interest_fen: int, penalty_fen: int) -> Entry | None:
    """The accrual of many loans for one date, as one entry; None when there is nothing."""
    assert interest_fen >= 0 and penalty_fen >= 0
    if interest_fen == 0 and penalty_fen == 0:
        return None
    return _entry(
        EntryKind.ACCRUAL,
        (Account.INTEREST_RECEIVABLE, interest_fen),
        (Account.INTEREST_INCOME, -interest_fen),
        (Account.PENALTY_RECEIVABLE, penalty_fen),
        (Account.PENALTY_INCOME, -penalty_fen),
    )


def reward_entry(amount_fen: int) -> Entry:
    """A red-envelope reward granted: an expense, owed to the customer until paid out through
    the channel (the payout, Dr 2241 / Cr 1002, comes with the wallet transfer)."""
    assert amount_fen > 0
    return _entry(
        EntryKind.REWARD,
        (Account.MARKETING_EXPENSE, amount_fen),
        (Account.REWARD_PAYABLE, -amount_fen),
    )
