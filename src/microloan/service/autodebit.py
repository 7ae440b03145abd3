"""Auto-debit for the open date (lending rules §5): everything overdue plus today's installment.

The payment rail is a port; :class:`AlwaysPaysRail` stands in until the real rail arrives.
A failed debit is retried (default twice more) and is never an error of the loan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.line import LoanStatus
from microloan.domain.money import format_yuan
from microloan.service.clock import read_clock
from microloan.service.lending import repay
from microloan.service.platform import Platform
from microloan.store import loans as repo
from microloan.store.schema import loan, repayment


class DebitRail(Protocol):
    def debit(self, customer_id: int, amount_fen: int, key: str) -> bool: ...


class AlwaysPaysRail:
    def debit(self, customer_id: int, amount_fen: int, key: str) -> bool:
        return amount_fen > 0


@dataclass
class AutodebitResult:
    business_date: str
    loans_due: int = 0
    debited: int = 0
    failed: int = 0
    amount_fen: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_date": self.business_date,
            "loans_due": self.loans_due,
            "debited": self.debited,
            "failed": self.failed,
            "amount": format_yuan(self.amount_fen),
        }


def run_autodebit(p: Platform, rail: DebitRail | None = None) -> AutodebitResult:
    rail = rail or AlwaysPaysRail()
    with p.engine.connect() as conn:
        today = read_clock(conn, p.now).open_date
        rows = list(
            conn.execute(
                sa.select(*repo.LOAN_COLUMNS)
                .where(loan.c.status == LoanStatus.OPEN.value, loan.c.earliest_unpaid_due <= today)
                .order_by(loan.c.loan_id)
            )
        )
        states = repo.live_states(conn, rows)
        counted = conn.execute(
            sa.select(repayment.c.loan_id, sa.func.count())
            .where(repayment.c.business_date == today, repayment.c.source == "autodebit")
            .group_by(repayment.c.loan_id)
        )
        done_today: dict[int, int] = {int(lid): int(n) for lid, n in counted}
    result = AutodebitResult(today.isoformat())
    for r in rows:
        due = L.due_today_fen(states[r.loan_id], today)
        if due <= 0:
            continue
        result.loans_due += 1
        key = f"autodebit:{r.loan_id}:{today}:{done_today.get(r.loan_id, 0)}"
        for _attempt in range(1 + p.settings.autodebit_retries):
            if rail.debit(r.customer_id, due, key):
                repay(p, r.customer_id, r.loan_id, due, key, source="autodebit")
                result.debited += 1
                result.amount_fen += due
                break
        else:
            result.failed += 1
    return result
