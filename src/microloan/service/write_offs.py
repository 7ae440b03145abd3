"""Write-off (lending rules §7): a loan more than 180 days past due leaves the balance sheet
against the allowance when one operator proposes it and a different one approves.

The loan stays open and is still collected: its interest and penalty keep counting off balance,
and whatever is paid on it afterwards is income (recovery), booked by the repayment itself
(``books.off_balance_split``). The approval books, on the open date, the principal and the
on-balance receivables it moves off, from the loan's live figures.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from microloan.domain.books import write_off_entry
from microloan.domain.classification import WRITE_OFF_DPD
from microloan.domain.line import LoanStatus
from microloan.domain.money import format_yuan
from microloan.errors import InvalidInput, NotFound, RuleViolation
from microloan.service.clock import read_clock
from microloan.service.operators import Operator, on_approve, propose
from microloan.service.platform import Platform
from microloan.store import loans as repo
from microloan.store.ledger import post
from microloan.store.schema import loan, write_off

KIND = "loan.write_off"


def candidates(p: Platform, *, limit: int = 100) -> dict[str, Any]:
    """Open loans more than 180 days past due at the last close, not yet written off."""
    with p.engine.connect() as conn:
        clock = read_clock(conn, p.now)
        rows = conn.execute(
            sa.select(
                loan.c.loan_id,
                loan.c.customer_id,
                loan.c.dpd,
                loan.c.snap_principal_fen,
                loan.c.interest_recv_fen,
                loan.c.penalty_recv_fen,
            )
            .where(
                loan.c.status == LoanStatus.OPEN.value,
                loan.c.written_off_on.is_(None),
                loan.c.dpd >= WRITE_OFF_DPD,
            )
            .order_by(loan.c.dpd.desc(), loan.c.loan_id)
            .limit(limit)
        ).all()
    return {
        "as_of": None if clock.last_closed_date is None else clock.last_closed_date.isoformat(),
        "candidates": [
            {
                "loan_id": r.loan_id,
                "customer_id": r.customer_id,
                "dpd": r.dpd,
                "principal": format_yuan(r.snap_principal_fen),
                "interest_receivable": format_yuan(r.interest_recv_fen),
                "penalty_receivable": format_yuan(r.penalty_recv_fen),
            }
            for r in rows
        ],
    }


def propose_write_off(p: Platform, op: Operator, loan_id: int, *, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise InvalidInput("a reason is required", field="reason")

    def work(conn: sa.Connection) -> dict[str, Any]:
        row = _eligible(conn, loan_id)
        payload = {"loan_id": loan_id, "dpd": int(row.dpd), "reason": reason.strip()[:200]}
        pid = propose(conn, p, op, KIND, f"loan:{loan_id}", payload)
        return {"proposal_id": pid, "status": "pending", **payload}

    return p.transaction(work)


def _eligible(conn: sa.Connection, loan_id: int, *, lock: bool = False) -> Any:
    q = sa.select(*repo.LOAN_COLUMNS).where(loan.c.loan_id == loan_id)
    row = conn.execute(q.with_for_update() if lock else q).one_or_none()
    if row is None:
        raise NotFound(f"loan {loan_id} does not exist", code="loan.not_found", field="loan")
    if row.status != LoanStatus.OPEN.value:
        raise RuleViolation(
            f"loan {loan_id} is {row.status}: only an open loan is written off",
            code="write_off.not_open",
            field="loan",
        )
    if row.written_off_on is not None:
        raise RuleViolation(
            f"loan {loan_id} was written off on {row.written_off_on}",
            code="write_off.already",
            field="loan",
        )
    if row.dpd < WRITE_OFF_DPD:
        raise RuleViolation(
            f"loan {loan_id} is {row.dpd} days past due at the last close; a write-off needs "
            f"more than {WRITE_OFF_DPD - 1}",
            code="write_off.not_candidate",
            field="loan",
        )
    return row


@on_approve(KIND)
def _approve(
    conn: sa.Connection, p: Platform, payload: dict[str, Any], op: Operator
) -> dict[str, Any]:
    loan_id = int(payload["loan_id"])
    row = _eligible(conn, loan_id, lock=True)
    today = read_clock(conn, p.now).open_date
    state, pending = repo.live(conn, [row])[loan_id]
    principal = state.principal_outstanding_fen
    interest, penalty = repo.on_balance_now(row, pending)
    now = p.now()
    entry_id = post(
        conn,
        write_off_entry(principal, interest, penalty),
        book=row.book_id,
        business_date=today,
        reference=f"write_off:{loan_id}",
        created_at=now,
        customer_id=row.customer_id,
        loan_id=loan_id,
    )
    conn.execute(
        write_off.insert(),
        {
            "loan_id": loan_id,
            "customer_id": row.customer_id,
            "business_date": today,
            "principal_fen": principal,
            "interest_fen": interest,
            "penalty_fen": penalty,
            "proposal_id": int(payload["proposal_id"]),
            "entry_id": entry_id,
            "created_at": now,
        },
    )
    conn.execute(loan.update().where(loan.c.loan_id == loan_id).values(written_off_on=today))
    return {
        "loan_id": loan_id,
        "written_off_on": today.isoformat(),
        "principal": format_yuan(principal),
        "interest": format_yuan(interest),
        "penalty": format_yuan(penalty),
    }
