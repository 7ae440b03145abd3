"""Loading and saving loan snapshots, and replaying the repayments dated after them.

Repositories never commit: the service layer owns every transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.rates import PENALTY_SCALE, DailyRate
from microloan.domain.schedule import Method
from microloan.store.prepared import Prepared
from microloan.store.schema import installment, loan, repayment

LOAN_COLUMNS = [c for c in loan.c]
_INSTALLMENTS_OF = sa.select(installment).where(
    installment.c.loan_id.in_(sa.bindparam("ids", expanding=True))
)


_REPAYMENT_COLUMNS = (  # in StoredRepayment's order
    repayment.c.repayment_id,
    repayment.c.loan_id,
    repayment.c.business_date,
    repayment.c.amount_fen,
    repayment.c.penalty_fen,
    repayment.c.interest_fen,
    repayment.c.principal_fen,
    repayment.c.prepaid_fen,
    repayment.c.off_interest_fen,
    repayment.c.off_penalty_fen,
    repayment.c.off_principal_fen,
)


@dataclass(slots=True)
class StoredRepayment:
    repayment_id: int
    loan_id: int
    business_date: date
    amount_fen: int
    penalty_fen: int
    interest_fen: int
    principal_fen: int
    prepaid_fen: int
    off_interest_fen: int = 0
    off_penalty_fen: int = 0
    off_principal_fen: int = 0


def snapshot_state(row: Any, installments: Sequence[Any]) -> L.LoanState:
    """The domain state stored on a loan row and its installment rows."""
    insts = [
        L.Installment(
            i.period,
            i.due_date,
            i.principal_fen,
            i.interest_fen,
            i.principal_paid_fen,
            i.interest_paid_fen,
        )
        for i in sorted(installments, key=lambda i: i.period)
    ]
    assert len(insts) == row.term_months, f"loan {row.loan_id}: installments missing"
    return L.LoanState(
        principal_fen=row.principal_fen,
        rate=DailyRate(row.rate_units),
        method=Method(row.method),
        drawn_on=row.drawn_on,
        installments=insts,
        accrued_through=row.accrued_through,
        period_interest_units=row.period_interest_units,
        penalty_units=row.penalty_whole_fen * PENALTY_SCALE + row.penalty_rem_units,
        penalty_paid_fen=row.penalty_paid_fen,
    )


def snapshot_columns(state: L.LoanState) -> dict[str, Any]:
    whole, rem = divmod(state.penalty_units, PENALTY_SCALE)
    return {
        "accrued_through": state.accrued_through,
        "period_interest_units": state.period_interest_units,
        "penalty_whole_fen": whole,
        "penalty_rem_units": rem,
        "penalty_paid_fen": state.penalty_paid_fen,
    }


def installment_rows(customer_id: int, loan_id: int, state: L.LoanState) -> list[dict[str, Any]]:
    return [
        {
            "loan_id": loan_id,
            "period": i.period,
            "customer_id": customer_id,
            "due_date": i.due_date,
            "principal_fen": i.principal_fen,
            "interest_fen": i.interest_fen,
            "principal_paid_fen": i.principal_paid_fen,
            "interest_paid_fen": i.interest_paid_fen,
        }
        for i in state.installments
    ]


def load_installments(conn: sa.Connection, loan_ids: Iterable[int]) -> dict[int, list[Any]]:
    ids = list(loan_ids)
    out: dict[int, list[Any]] = defaultdict(list)
    if not ids:
        return out
    rows = conn.execute(_INSTALLMENTS_OF, {"ids": ids})
    for r in rows:
        out[r.loan_id].append(r)
    return out


def load_repayments(
    conn: sa.Connection,
    loan_ids: Iterable[int],
    *,
    after: dict[int, date] | None = None,
    on: date | None = None,
) -> dict[int, list[StoredRepayment]]:
    """Repayments of the loans, in booking order; ``after`` keeps those dated after a date per
    loan, ``on`` those of one date."""
    ids = list(loan_ids)
    out: dict[int, list[StoredRepayment]] = defaultdict(list)
    if not ids:
        return out
    stmt = sa.select(*_REPAYMENT_COLUMNS).where(repayment.c.loan_id.in_(ids))
    if on is not None:
        stmt = stmt.where(repayment.c.business_date == on)
    elif after is not None:
        stmt = stmt.where(repayment.c.business_date > min(after.values()))
    for r in conn.execute(stmt.order_by(repayment.c.repayment_id)):
        if after is not None and r.business_date <= after[r.loan_id]:
            continue
        out[r.loan_id].append(StoredRepayment(*r))
    return out


def replay(state: L.LoanState, repayments: Iterable[StoredRepayment]) -> L.LoanState:
    """Apply stored repayments in order, checking each lands exactly as it was booked."""
    for rp in repayments:
        state, alloc = L.repay(state, rp.business_date, rp.amount_fen)
        booked = (rp.penalty_fen, rp.interest_fen, rp.principal_fen, rp.prepaid_fen)
        now = (
            alloc.penalty_fen,
            alloc.interest_fen,
            alloc.principal_fen,
            alloc.prepaid_principal_fen,
        )
        assert booked == now, f"repayment {rp.repayment_id} replays as {now}, booked {booked}"
    return state


def live_states(conn: sa.Connection, rows: Sequence[Any]) -> dict[int, L.LoanState]:
    """Each loan's state with every repayment applied (snapshot + repayments after it)."""
    return {lid: state for lid, (state, _pending) in live(conn, rows).items()}


def live(
    conn: sa.Connection, rows: Sequence[Any]
) -> dict[int, tuple[L.LoanState, list[StoredRepayment]]]:
    """Each loan's live state, and the repayments dated after its snapshot."""
    if len(rows) == 1:
        return {rows[0].loan_id: _live_one(conn, rows[0])}
    ids = [r.loan_id for r in rows]
    insts = load_installments(conn, ids)
    pending = load_repayments(conn, ids, after={r.loan_id: r.closed_through for r in rows})
    out = {}
    for r in rows:
        mine = pending.get(r.loan_id, [])
        out[r.loan_id] = (replay(snapshot_state(r, insts[r.loan_id]), mine), mine)
    return out


_INSTALLMENTS_OF_ONE = Prepared(
    sa.select(installment).where(installment.c.loan_id == sa.bindparam("lid"))
)
_REPAYMENTS_AFTER = Prepared(
    sa.select(*_REPAYMENT_COLUMNS)
    .where(
        repayment.c.loan_id == sa.bindparam("lid"),
        repayment.c.business_date > sa.bindparam("after", type_=sa.Date),
    )
    .order_by(repayment.c.repayment_id)
)


def live_one(conn: sa.Connection, row: Any) -> L.LoanState:
    """One loan's live state."""
    return _live_one(conn, row)[0]


def _live_one(conn: sa.Connection, row: Any) -> tuple[L.LoanState, list[StoredRepayment]]:
    """``live`` of one loan, its two reads prepared."""
    insts = _INSTALLMENTS_OF_ONE.rows(conn, {"lid": row.loan_id})
    after = _REPAYMENTS_AFTER.rows(conn, {"lid": row.loan_id, "after": row.closed_through})
    mine = [StoredRepayment(*r) for r in after]
    return replay(snapshot_state(row, insts), mine), mine


def on_balance_now(row: Any, pending: Sequence[StoredRepayment]) -> tuple[int, int]:
    """Interest and penalty receivable on balance now: the snapshot's, less what repayments
    since took from the balance sheet (the day's accrual is booked only at its close)."""
    interest = row.interest_recv_fen - sum(rp.interest_fen - rp.off_interest_fen for rp in pending)
    penalty = row.penalty_recv_fen - sum(rp.penalty_fen - rp.off_penalty_fen for rp in pending)
    return interest, penalty


def eod_columns(state: L.LoanState) -> dict[str, Any]:
    """The end of day's per-loan columns of a state (see ``LoanState`` and ``snapshot_view``)."""
    view = L.snapshot_view(state)
    return {
        "perf_fen": view.performing_fen,
        "over_fen": view.overdue_fen,
        "next_due": view.next_due,
        "over_since": view.overdue_since,
        "snap_principal_fen": view.principal_fen,
    }
