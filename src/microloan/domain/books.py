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
    LOAN_LOSS_ALLOWANCE = "1304"  # 贷款损失准备 (contra-asset, credit balance)
    RECOVERY_INCOME = "6031"  # 已核销贷款收回 money collected on written-off loans
    IMPAIRMENT_LOSS = "6701"  # 信用减值损失 provision expense
    # memo (off-balance) accounts: they balance among themselves, never against the others
    OFF_INTEREST = "7001"  # 表外应收利息 interest of non-accrual and written-off loans
    OFF_PENALTY = "7002"  # 表外应收罚息
    WRITTEN_OFF_PRINCIPAL = "7003"  # 已核销贷款本金 principal still owed after write-off
    MEMO_CONTRA = "7099"  # 表外对方科目 the other side of every memo posting

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
    Account.LOAN_LOSS_ALLOWANCE: "贷款损失准备 Loan loss allowance",
    Account.RECOVERY_INCOME: "已核销贷款收回 Recoveries of written-off loans",
    Account.IMPAIRMENT_LOSS: "信用减值损失 Impairment loss",
    Account.OFF_INTEREST: "表外应收利息 Off-balance interest",
    Account.OFF_PENALTY: "表外应收罚息 Off-balance penalty",
    Account.WRITTEN_OFF_PRINCIPAL: "已核销贷款本金 Written-off principal",
    Account.MEMO_CONTRA: "表外对方科目 Memo contra",
}

MEMO_ACCOUNTS = frozenset(
    {
        Account.OFF_INTEREST,
        Account.OFF_PENALTY,
        Account.WRITTEN_OFF_PRINCIPAL,
        Account.MEMO_CONTRA,
    }
)


class EntryKind(StrEnum):
    DISBURSEMENT = "disbursement"
    REPAYMENT = "repayment"
    ACCRUAL = "accrual"
    REWARD = "reward"
    PROVISION = "provision"
    WRITE_OFF = "write_off"


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
        memo = sum(p.amount_fen for p in self.postings if p.account in MEMO_ACCOUNTS)
        assert memo == 0, f"memo postings do not balance among themselves in {self}"


def _entry(kind: EntryKind, *pairs: tuple[Account, int]) -> Entry:
    """Postings to the same account are added up; zero postings are left out."""
    sums: dict[Account, int] = {}
    for account, amount in pairs:
        sums[account] = sums.get(account, 0) + amount
    return Entry(kind, tuple(Posting(a, v) for a, v in sums.items() if v != 0))


@dataclass(frozen=True, slots=True)
class OffBalance:
    """The parts of a repayment taken from off-balance amounts (lending rules §7): interest and
    penalty of a non-accrual loan beyond what is receivable on balance, or anything paid on a
    written-off loan. They are income when paid, and leave the memo accounts."""

    interest_fen: int = 0
    penalty_fen: int = 0
    principal_fen: int = 0

    @property
    def total_fen(self) -> int:
        return self.interest_fen + self.penalty_fen + self.principal_fen


NO_OFF_BALANCE = OffBalance()


def off_balance_split(
    allocation: Allocation,
    *,
    non_accrual: bool,
    written_off: bool,
    interest_on_balance_fen: int,
    penalty_on_balance_fen: int,
) -> OffBalance:
    """Where a repayment's parts come from: a written-off loan owes nothing on balance; a
    non-accrual loan pays what is on balance first (booked before it stopped accruing), the
    rest from the memo accounts; an accruing loan pays from the balance sheet only."""
    if written_off:
        return OffBalance(allocation.interest_fen, allocation.penalty_fen, allocation.principal_fen)
    if not non_accrual:
        return NO_OFF_BALANCE
    on_i = min(allocation.interest_fen, max(interest_on_balance_fen, 0))
    on_p = min(allocation.penalty_fen, max(penalty_on_balance_fen, 0))
    return OffBalance(allocation.interest_fen - on_i, allocation.penalty_fen - on_p, 0)


def disbursement_entry(principal_fen: int) -> Entry:
    assert principal_fen > 0
    return _entry(
        EntryKind.DISBURSEMENT,
        (Account.LOAN_PRINCIPAL, principal_fen),
        (Account.SETTLEMENT, -principal_fen),
    )


def repayment_entry(
    allocation: Allocation, off: OffBalance = NO_OFF_BALANCE, *, written_off: bool = False
) -> Entry:
    """Cash in; receivables down by the on-balance parts. Off-balance parts are income (interest
    and penalty of a non-accrual loan) or recoveries (anything on a written-off loan), and leave
    the memo accounts."""
    assert allocation.total_fen > 0
    if written_off:
        income: tuple[tuple[Account, int], ...] = ((Account.RECOVERY_INCOME, -off.total_fen),)
    else:
        assert off.principal_fen == 0
        income = (
            (Account.INTEREST_INCOME, -off.interest_fen),
            (Account.PENALTY_INCOME, -off.penalty_fen),
        )
    return _entry(
        EntryKind.REPAYMENT,
        (Account.SETTLEMENT, allocation.total_fen),
        (Account.PENALTY_RECEIVABLE, -(allocation.penalty_fen - off.penalty_fen)),
        (Account.INTEREST_RECEIVABLE, -(allocation.interest_fen - off.interest_fen)),
        (Account.LOAN_PRINCIPAL, -(allocation.principal_fen - off.principal_fen)),
        *income,
        (Account.MEMO_CONTRA, off.total_fen),
        (Account.OFF_INTEREST, -off.interest_fen),
        (Account.OFF_PENALTY, -off.penalty_fen),
        (Account.WRITTEN_OFF_PRINCIPAL, -off.principal_fen),
    )


def day_accrual_entry(
    interest_fen: int, penalty_fen: int, off_interest_fen: int, off_penalty_fen: int
) -> Entry | None:
    """Many loans' accrual for one date: on balance as income, off balance (non-accrual and
    written-off loans) in the memo accounts. A part may be negative where the end of day moved
    an amount between the balance sheet and the memo accounts (see ``eod_columns``)."""
    entry = _entry(
        EntryKind.ACCRUAL,
        (Account.INTEREST_RECEIVABLE, interest_fen),
        (Account.INTEREST_INCOME, -interest_fen),
        (Account.PENALTY_RECEIVABLE, penalty_fen),
        (Account.PENALTY_INCOME, -penalty_fen),
        (Account.OFF_INTEREST, off_interest_fen),
        (Account.OFF_PENALTY, off_penalty_fen),
        (Account.MEMO_CONTRA, -(off_interest_fen + off_penalty_fen)),
    )
    return entry if entry.postings else None


def provision_entry(change_fen: int) -> Entry | None:
    """Bring the allowance to the required level: a positive change is an expense, a negative
    one a release."""
    if change_fen == 0:
        return None
    return _entry(
        EntryKind.PROVISION,
        (Account.IMPAIRMENT_LOSS, change_fen),
        (Account.LOAN_LOSS_ALLOWANCE, -change_fen),
    )


def write_off_entry(principal_fen: int, interest_fen: int, penalty_fen: int) -> Entry:
    """The loan leaves the balance sheet against the allowance; what is still owed moves to the
    memo accounts, where it keeps being collected (lending rules §7)."""
    total = principal_fen + interest_fen + penalty_fen
    assert principal_fen >= 0 and total > 0
    return _entry(
        EntryKind.WRITE_OFF,
        (Account.LOAN_LOSS_ALLOWANCE, total),
        (Account.LOAN_PRINCIPAL, -principal_fen),
        (Account.INTEREST_RECEIVABLE, -interest_fen),
        (Account.PENALTY_RECEIVABLE, -penalty_fen),
        (Account.WRITTEN_OFF_PRINCIPAL, principal_fen),
        (Account.OFF_INTEREST, interest_fen),
        (Account.OFF_PENALTY, penalty_fen),
        (Account.MEMO_CONTRA, -total),
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
