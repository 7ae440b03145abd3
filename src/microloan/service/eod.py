"""End of day for the lending core: accrual, aging, penalty and overdue blocks, once per date.

For each date d from the last closed date + 1 to the day before the open date, in order:
every loan whose snapshot stands at d − 1 is advanced through d, the repayments dated d are
folded in, the day's interest and penalty are written as per-loan accrual records, and a chunk's
accruals become one journal entry per book, all in the chunk's transaction. A loan's snapshot
moves only from d − 1 to d (``WHERE closed_through = d − 1``), so a crash or a rerun never
processes a loan twice for a date. Then lines are (un)blocked and the date is closed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.books import accrual_entry
from microloan.domain.line import LoanStatus
from microloan.domain.money import format_yuan
from microloan.errors import MicroloanError
from microloan.service.clock import first_date_to_close, read_clock
from microloan.service.platform import Platform
from microloan.store import loans as repo
from microloan.store.ledger import post
from microloan.store.schema import accrual, business_clock, credit_line, eod_run, installment, loan

CHUNK = 500
MAX_WAIT_S = 300.0  # how long a date waits for loans that a parallel runner holds
Progress = Callable[[date, int, int], None]


@dataclass
class DayResult:
    business_date: date
    loans: int = 0
    interest_fen: int = 0
    penalty_fen: int = 0
    overdue_loans: int = 0
    blocked_lines: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_date": self.business_date.isoformat(),
            "loans": self.loans,
            "interest": format_yuan(self.interest_fen),
            "penalty": format_yuan(self.penalty_fen),
            "overdue_loans": self.overdue_loans,
            "blocked_lines": self.blocked_lines,
        }


def run_eod(
    p: Platform, *, until: date | None = None, progress: Progress | None = None
) -> list[DayResult]:
    """Close every unclosed date before the open date (or through ``until``), in order."""
    with p.engine.connect() as conn:
        clock = read_clock(conn, p.now)
        d = first_date_to_close(conn, clock)
    last = clock.open_date - timedelta(days=1)
    if until is not None:
        last = min(last, until)
    results = []
    while d <= last:
        results.append(close_date(p, d, progress=progress))
        d += timedelta(days=1)
    return results


def close_date(p: Platform, d: date, *, progress: Progress | None = None) -> DayResult:
    """Close one date. Safe to run twice at once: loans are locked chunk by chunk (a loan held
    by a repayment in flight is waited for, never skipped) and the date closes once."""
    result = DayResult(d)
    run_id = p.transaction(lambda conn: _start_run(conn, d, p))
    if run_id is None:
        return result  # another run closed it already
    total = _count_due(p, d)
    waited_s = 0.0
    while True:
        done = p.transaction(lambda conn: _close_chunk(conn, d, p, result))
        if progress is not None:
            progress(d, result.loans, total)
        if done:
            waited_s = 0.0
            continue
        if p.transaction(lambda conn: _finish(conn, d, run_id, result, p)):
            return result
        if waited_s >= MAX_WAIT_S:
            raise MicroloanError(
                f"end of day for {d} waited {MAX_WAIT_S:.0f} s for loans held elsewhere",
                code="eod.stalled",
            )
        time.sleep(0.02)  # loans still held by a parallel runner: wait for its commit
        waited_s += 0.02


def _start_run(conn: sa.Connection, d: date, p: Platform) -> int | None:
    clock = conn.execute(
        sa.select(business_clock).where(business_clock.c.id == 1).with_for_update()
    ).one()
    if clock.last_closed_date is not None and clock.last_closed_date >= d:
        return None
    assert clock.last_closed_date in (None, d - timedelta(days=1)), "dates close in order"
    return int(
        conn.execute(
            eod_run.insert().returning(eod_run.c.run_id),
            {
                "business_date": d,
                "status": "running",
                "started_at": p.now(),
                "loans": 0,
                "interest_fen": 0,
                "penalty_fen": 0,
                "overdue_loans": 0,
                "blocked_lines": 0,
            },
        ).scalar_one()
    )


def _due_filter(d: date) -> Any:
    return sa.and_(
        loan.c.closed_through == d - timedelta(days=1),
        loan.c.status.in_([LoanStatus.OPEN.value, LoanStatus.CLOSED.value]),
        sa.or_(loan.c.closed_on.is_(None), loan.c.closed_on >= d),
    )


def _count_due(p: Platform, d: date) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(_due_filter(d))).scalar_one())


def _close_chunk(conn: sa.Connection, d: date, p: Platform, result: DayResult) -> int:
    q = sa.select(*repo.LOAN_COLUMNS).where(_due_filter(d)).order_by(loan.c.loan_id).limit(CHUNK)
    if p.is_postgres:
        q = q.with_for_update()  # rows a parallel runner closed meanwhile drop out on recheck
    rows = list(conn.execute(q))
    if not rows:
        return 0
    ids = [r.loan_id for r in rows]
    insts = repo.load_installments(conn, ids)
    todays = repo.load_repayments(conn, ids, on=d)
    accruals: dict[int, list[dict[str, Any]]] = defaultdict(list)
    loan_updates, inst_updates = [], []
    for r in rows:
        before = repo.snapshot_state(r, insts[r.loan_id])
        after = repo.replay(L.advance(before, d), todays.get(r.loan_id, ()))
        interest = after.interest_accrued_fen - r.interest_booked_fen
        penalty = after.penalty_accrued_fen - r.penalty_booked_fen
        assert interest >= 0 and penalty >= 0, f"loan {r.loan_id}: negative accrual"
        dpd = L.days_past_due(after, d) if r.status == LoanStatus.OPEN.value else 0
        result.overdue_loans += dpd > 0
        if interest or penalty:
            accruals[r.book_id].append(
                {
                    "loan_id": r.loan_id,
                    "business_date": d,
                    "customer_id": r.customer_id,
                    "book_id": r.book_id,
                    "interest_fen": interest,
                    "penalty_fen": penalty,
                }
            )
        loan_updates.append(
            {
                "b_loan_id": r.loan_id,
                "b_closed_through": d - timedelta(days=1),
                "closed_through": d,
                "interest_booked_fen": r.interest_booked_fen + interest,
                "penalty_booked_fen": r.penalty_booked_fen + penalty,
                "dpd": dpd,
                **repo.snapshot_columns(after),
            }
        )
        old = {i.period: i for i in insts[r.loan_id]}
        for row in repo.installment_rows(r.customer_id, r.loan_id, after):
            o = old[row["period"]]
            if (o.principal_fen, o.interest_fen, o.principal_paid_fen, o.interest_paid_fen) != (
                row["principal_fen"],
                row["interest_fen"],
                row["principal_paid_fen"],
                row["interest_paid_fen"],
            ):
                inst_updates.append(
                    {
                        f"b_{k}" if k in ("loan_id", "period") else k: v
                        for k, v in row.items()
                        if k not in ("customer_id", "due_date")
                    }
                )
        result.interest_fen += interest
        result.penalty_fen += penalty
    for book, records in accruals.items():
        entry = accrual_entry(
            sum(a["interest_fen"] for a in records), sum(a["penalty_fen"] for a in records)
        )
        assert entry is not None
        entry_id = post(
            conn,
            entry,
            book=book,
            business_date=d,
            created_at=p.now(),
            reference=f"accrual:{d}:{records[0]['loan_id']}-{records[-1]['loan_id']}",
        )
        conn.execute(accrual.insert(), [{**a, "entry_id": entry_id} for a in records])
    _write_snapshots(conn, loan_updates, inst_updates)
    result.loans += len(rows)
    return len(rows)


def _write_snapshots(
    conn: sa.Connection, loans: list[dict[str, Any]], insts: list[dict[str, Any]]
) -> None:
    stmt = (
        loan.update()
        .where(
            loan.c.loan_id == sa.bindparam("b_loan_id"),
            loan.c.closed_through == sa.bindparam("b_closed_through"),
        )
        .values({k: sa.bindparam(k) for k in loans[0] if not k.startswith("b_")})
    )
    written = conn.execute(stmt, loans).rowcount
    assert written == len(loans), "a loan's snapshot moved under the end of day"
    if insts:
        conn.execute(
            installment.update()
            .where(
                installment.c.loan_id == sa.bindparam("b_loan_id"),
                installment.c.period == sa.bindparam("b_period"),
            )
            .values({k: sa.bindparam(k) for k in insts[0] if not k.startswith("b_")}),
            insts,
        )


def _finish(conn: sa.Connection, d: date, run_id: int, result: DayResult, p: Platform) -> bool:
    """Block lines with an overdue loan at the end of d, unblock the rest, close the date.

    False (and nothing written) while loans of d are still held by a parallel runner."""
    clock = conn.execute(
        sa.select(business_clock).where(business_clock.c.id == 1).with_for_update()
    ).one()
    if clock.last_closed_date is not None and clock.last_closed_date >= d:
        _record_run(conn, run_id, "shared", result, p)  # another runner closed the date
        return True
    if conn.execute(sa.select(sa.func.count()).where(_due_filter(d))).scalar_one():
        return False
    overdue = sa.exists().where(
        loan.c.customer_id == credit_line.c.customer_id,
        loan.c.status == LoanStatus.OPEN.value,
        loan.c.earliest_unpaid_due <= d,
    )
    conn.execute(credit_line.update().values(overdue_blocked=overdue))
    result.blocked_lines = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(credit_line).where(credit_line.c.overdue_blocked)
        ).scalar_one()
    )
    conn.execute(business_clock.update().where(business_clock.c.id == 1).values(last_closed_date=d))
    _record_run(conn, run_id, "done", result, p)
    return True


def _record_run(
    conn: sa.Connection, run_id: int, status: str, result: DayResult, p: Platform
) -> None:
    conn.execute(
        eod_run.update()
        .where(eod_run.c.run_id == run_id)
        .values(
            status=status,
            finished_at=p.now(),
            loans=result.loans,
            interest_fen=result.interest_fen,
            penalty_fen=result.penalty_fen,
            overdue_loans=result.overdue_loans,
            blocked_lines=result.blocked_lines,
        )
    )
