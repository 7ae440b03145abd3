"""End of day (servicing §1, lending rules §6–§8): it closes business dates, never moves money.

For each date d from the last closed date + 1 to the day before the open date, in this order:

1. the day's payment results are recorded and the rail reconciled (``payments.before_close``);
2. loans are closed chunk by chunk, a chunk being every loan of a range of customers, in one
   transaction each: accrual, aging and penalty (as columns for quiet loans, by the domain for
   loans with a repayment, a due date or a write-off that day), on- or off-balance booking
   (non-accrual from 91 DPD), five-tier classification by borrower, the allowance each loan
   requires, line blocks and unblocks, the per-loan accrual records, one accrual entry per book,
   and the chunk's figures;
3. provisions are brought to the required level (the change of the total is booked);
4. the ledger's balances for d are the previous day's plus d's movements, and are reconciled
   with the sum over loans, account by account; every difference is recorded;
5. the day's portfolio figures are stored, the date is closed and the run recorded.

Exactly once: a loan's snapshot moves only from d − 1 to d (``closed_through``), in the same
transaction as its accrual records, entries and the chunk's figures; the day's figures are the
sum of the chunks' rows. A crash anywhere, followed by a rerun, gives the books of a clean run.
While it runs, money keeps moving on the open date: the run starts only once every transaction
that read the previous open date has committed (an advisory lock on PostgreSQL; SQLite writes
one at a time).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import polars as pl
import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.books import Account, day_accrual_entry, provision_entry
from microloan.domain.classification import PortfolioFigures, format_ratio, is_non_accrual
from microloan.domain.day_books import Paid, Receivables, close_day
from microloan.domain.line import LoanStatus
from microloan.domain.money import format_yuan
from microloan.errors import MicroloanError
from microloan.service.clock import DATE_LOCK, first_date_to_close, read_clock
from microloan.service.platform import Platform
from microloan.servicing import day_close as dc
from microloan.store import bulk
from microloan.store import loans as repo
from microloan.store.ledger import post
from microloan.store.schema import (
    accrual,
    business_clock,
    credit_line,
    eod_chunk,
    eod_run,
    gl_day,
    installment,
    journal_entry,
    journal_line,
    loan,
    portfolio_day,
    recon_issue,
    repayment,
    write_off,
)

CHUNK = 20_000  # loans per chunk, about; a customer's loans are never split
MAX_WAIT_S = 300.0  # how long a date waits for loans that a parallel runner holds
Progress = Callable[[date, int, int], None]

# accounts reconciled against the sum over loans, and the figure each equals (sign: debit > 0)
RECONCILED = (
    (Account.LOAN_PRINCIPAL, "balance_fen", 1),
    (Account.INTEREST_RECEIVABLE, "recv_interest_fen", 1),
    (Account.PENALTY_RECEIVABLE, "recv_penalty_fen", 1),
    (Account.OFF_INTEREST, "memo_interest_fen", 1),
    (Account.OFF_PENALTY, "memo_penalty_fen", 1),
    (Account.WRITTEN_OFF_PRINCIPAL, "written_off_principal_fen", 1),
    (Account.LOAN_LOSS_ALLOWANCE, "allowance_fen", -1),
)


@dataclass
class DayResult:
    business_date: date
    loans: int = 0
    interest_fen: int = 0
    penalty_fen: int = 0
    overdue_loans: int = 0
    blocked_lines: int = 0
    non_accrual_loans: int = 0
    write_off_candidates: int = 0
    provision_fen: int = 0
    reminders_due: int = 0
    reconciled: bool | None = None
    mismatches: int = 0
    chunks: int = 0
    ratios: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_date": self.business_date.isoformat(),
            "loans": self.loans,
            "interest": format_yuan(self.interest_fen),
            "penalty": format_yuan(self.penalty_fen),
            "overdue_loans": self.overdue_loans,
            "blocked_lines": self.blocked_lines,
            "non_accrual_loans": self.non_accrual_loans,
            "write_off_candidates": self.write_off_candidates,
            "provision_change": format_yuan(self.provision_fen),
            "reminders_due": self.reminders_due,
            "reconciled": self.reconciled,
            "mismatches": self.mismatches,
            **self.ratios,
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
    """Close one date. Safe to run twice at once: a chunk written by another runner meanwhile
    is given up and re-read, a loan held by a repayment in flight is waited for, and the date
    closes once."""
    result = DayResult(d)
    run_id = p.transaction(lambda conn: _start_run(conn, d, p))
    if run_id is None:
        return result  # another run closed it already
    clocks: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    from microloan.service import payments  # the rail's results for d, before its loans

    payments.before_close(p, d)
    clocks["payments"] += time.perf_counter() - t0
    total = _count_due(p, d)
    p.transaction(lambda conn: _set_run(conn, run_id, total=total, step="loans"))
    waited_s = 0.0
    while True:
        after: int | None = -1
        while after is not None:
            start = after
            try:
                after = p.transaction(
                    lambda conn, start=start: _close_chunk(conn, d, p, result, start, clocks)  # type: ignore[misc]
                )
            except _Moved:
                continue  # another runner closed some of these loans: read the range again
            if progress is not None:
                progress(d, result.loans, max(total, result.loans))
        t0 = time.perf_counter()
        done = p.transaction(lambda conn: _finish(conn, d, run_id, result, p, clocks))
        clocks["finish"] += time.perf_counter() - t0
        if done:
            return result
        if waited_s >= MAX_WAIT_S:
            raise MicroloanError(
                f"end of day for {d} waited {MAX_WAIT_S:.0f} s for loans held elsewhere",
                code="eod.stalled",
            )
        time.sleep(0.02)  # loans still held by a parallel runner: wait for its commit
        waited_s += 0.02


def _start_run(conn: sa.Connection, d: date, p: Platform) -> int | None:
    if p.is_postgres:  # wait for every money transaction that read the previous open date
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": DATE_LOCK})
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


def _set_run(conn: sa.Connection, run_id: int, **values: Any) -> None:
    conn.execute(eod_run.update().where(eod_run.c.run_id == run_id).values(**values))


def _due_filter(d: date) -> Any:
    """Loans whose snapshot stands at d − 1 and that were open on d."""
    return sa.and_(
        loan.c.closed_through == d - timedelta(days=1),
        sa.or_(
            loan.c.status == LoanStatus.OPEN.value,
            sa.and_(loan.c.status == LoanStatus.CLOSED.value, loan.c.closed_on >= d),
        ),
    )


def _count_due(p: Platform, d: date) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(_due_filter(d))).scalar_one())


_READ = [
    *(loan.c[k] for k in dc.INPUT),
    loan.c.principal_fen,
    loan.c.term_months,
    loan.c.method,
    loan.c.drawn_on,
]
_READ_SCHEMA = {
    **dc.INPUT,
    "principal_fen": pl.Int64,
    "term_months": pl.Int64,
    "method": pl.String,
    "drawn_on": pl.Date,
}


def _close_chunk(
    conn: sa.Connection,
    d: date,
    p: Platform,
    result: DayResult,
    after: int,
    clocks: dict[str, float],
) -> int | None:
    """Close the loans of the next range of customers (ids above ``after``); returns the last
    customer id of the range, or None when no customer is left."""
    t0 = time.perf_counter()
    hi = conn.execute(
        sa.select(loan.c.customer_id)
        .where(loan.c.customer_id > after, loan.c.status == LoanStatus.OPEN.value)
        .order_by(loan.c.customer_id)
        .offset(CHUNK)
        .limit(1)
    ).scalar()
    in_range = loan.c.customer_id > after
    if hi is not None:
        in_range = sa.and_(in_range, loan.c.customer_id <= hi)
    frame = bulk.read_frame(
        conn,
        sa.select(*_READ).where(in_range, _due_filter(d)).order_by(loan.c.loan_id),
        _READ_SCHEMA,
    )
    clocks["read"] += time.perf_counter() - t0
    if frame.is_empty():
        return None if hi is None else int(hi)
    t0 = time.perf_counter()
    ids = frame["loan_id"]
    lo_id, hi_id = int(ids.min()), int(ids.max())  # type: ignore[arg-type]
    paid_today = set(
        conn.execute(
            sa.select(repayment.c.loan_id).where(
                repayment.c.business_date == d,
                repayment.c.loan_id.between(lo_id, hi_id),
            )
        ).scalars()
    )
    offs = {
        r.loan_id: r
        for r in conn.execute(
            sa.select(write_off).where(
                write_off.c.business_date == d, write_off.c.loan_id.between(lo_id, hi_id)
            )
        )
    }
    eventful = (pl.col("next_due") == d) | pl.col("loan_id").is_in(list(paid_today | set(offs)))
    quiet = frame.filter(~eventful.fill_null(False))
    busy = frame.filter(eventful.fill_null(False))
    closed = [dc.close_quiet(quiet.select(list(dc.INPUT)), d)]
    inst_updates: list[dict[str, Any]] = []
    if not busy.is_empty():
        closed.append(_close_eventful(conn, busy, d, offs, inst_updates))
    classified, figures = dc.classify_chunk(pl.concat(closed))
    clocks["compute"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    _write_chunk(conn, d, p, classified, figures, inst_updates)
    _block_lines(conn, d, after, hi)
    clocks["write"] += time.perf_counter() - t0
    for f in figures.values():
        result.loans += f["loans"]
        result.interest_fen += f["interest_fen"]
        result.penalty_fen += f["penalty_fen"]
    result.chunks += 1
    return None if hi is None else int(hi)


def _close_eventful(
    conn: sa.Connection,
    busy: pl.DataFrame,
    d: date,
    offs: dict[int, Any],
    inst_updates: list[dict[str, Any]],
) -> pl.DataFrame:
    """Loans with a repayment, a due date or a write-off on d: closed one by one by the domain."""
    rows = [SimpleNamespace(**r) for r in busy.to_dicts()]
    ids = [r.loan_id for r in rows]
    insts = repo.load_installments(conn, ids)
    todays = repo.load_repayments(conn, ids, on=d)
    out = []
    for r in rows:
        before = repo.snapshot_state(r, insts[r.loan_id])
        paid_today = todays.get(r.loan_id, [])
        after = repo.replay(L.advance(before, d), paid_today)
        interest = after.interest_accrued_fen - r.interest_booked_fen
        penalty = after.penalty_accrued_fen - r.penalty_booked_fen
        assert interest >= 0 and penalty >= 0, f"loan {r.loan_id}: negative accrual"
        written_off = r.written_off_on is not None and r.written_off_on <= d
        wo = offs.get(r.loan_id)
        receivables, day = close_day(
            Receivables(
                r.interest_recv_fen, r.penalty_recv_fen, r.interest_memo_fen, r.penalty_memo_fen
            ),
            interest_fen=interest,
            penalty_fen=penalty,
            off_balance=bool(r.non_accrual) or written_off,
            written_off=written_off,
            paid=Paid(
                sum(rp.interest_fen - rp.off_interest_fen for rp in paid_today),
                sum(rp.penalty_fen - rp.off_penalty_fen for rp in paid_today),
                sum(rp.off_interest_fen for rp in paid_today),
                sum(rp.off_penalty_fen for rp in paid_today),
            ),
            written_off_interest_fen=wo.interest_fen if wo is not None else 0,
            written_off_penalty_fen=wo.penalty_fen if wo is not None else 0,
        )
        dpd = L.days_past_due(after, d)
        out.append(
            {
                "loan_id": r.loan_id,
                "customer_id": r.customer_id,
                "book_id": r.book_id,
                **repo.snapshot_columns(after),
                "interest_booked_fen": r.interest_booked_fen + interest,
                "penalty_booked_fen": r.penalty_booked_fen + penalty,
                "dpd": dpd,
                **repo.eod_columns(after),
                "interest_recv_fen": receivables.interest_fen,
                "penalty_recv_fen": receivables.penalty_fen,
                "interest_memo_fen": receivables.off_interest_fen,
                "penalty_memo_fen": receivables.off_penalty_fen,
                "non_accrual": is_non_accrual(dpd),
                "written_off": written_off,
                "old_tier": r.tier,
                "acc_interest_fen": day.interest_fen,
                "acc_penalty_fen": day.penalty_fen,
                "acc_off_interest_fen": day.off_interest_fen,
                "acc_off_penalty_fen": day.off_penalty_fen,
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
    return dc.output_frame([tuple(o[k] for k in dc.OUTPUT) for o in out])  # type: ignore[misc]


_LOAN_SET = (
    "accrued_through",
    "period_interest_units",
    "penalty_whole_fen",
    "penalty_rem_units",
    "penalty_paid_fen",
    "interest_booked_fen",
    "penalty_booked_fen",
    "dpd",
    "perf_fen",
    "over_fen",
    "next_due",
    "over_since",
    "snap_principal_fen",
    "interest_recv_fen",
    "penalty_recv_fen",
    "interest_memo_fen",
    "penalty_memo_fen",
    "non_accrual",
    "tier",
)


class _Moved(RuntimeError):
    """A loan of the chunk was closed by another runner meanwhile: the chunk is read again."""


def _write_chunk(
    conn: sa.Connection,
    d: date,
    p: Platform,
    classified: pl.DataFrame,
    figures: dict[int, dict[str, int]],
    inst_updates: list[dict[str, Any]],
) -> None:
    written = bulk.update_from_frame(
        conn,
        loan,
        classified,
        key="loan_id",
        columns=_LOAN_SET,
        constants={"closed_through": d},
        guard=("closed_through", d - timedelta(days=1)),
    )
    if written != classified.height:
        raise _Moved(f"{classified.height - written} loans of the chunk moved under it")
    if inst_updates:
        conn.execute(
            installment.update()
            .where(
                installment.c.loan_id == sa.bindparam("b_loan_id"),
                installment.c.period == sa.bindparam("b_period"),
            )
            .values({k: sa.bindparam(k) for k in inst_updates[0] if not k.startswith("b_")}),
            inst_updates,
        )
    accruing = classified.filter(
        (pl.col("acc_interest_fen") != 0)
        | (pl.col("acc_penalty_fen") != 0)
        | (pl.col("acc_off_interest_fen") != 0)
        | (pl.col("acc_off_penalty_fen") != 0)
    )
    for book_id, f in figures.items():
        entry = day_accrual_entry(
            f["interest_fen"], f["penalty_fen"], f["off_interest_fen"], f["off_penalty_fen"]
        )
        mine = accruing.filter(pl.col("book_id") == book_id)
        if entry is not None:
            entry_id = post(
                conn,
                entry,
                book=book_id,
                business_date=d,
                created_at=p.now(),
                reference=f"accrual:{d}:{_span(mine)}",
            )
        else:
            entry_id = _zero_entry(conn, book_id, d, p)
        if not mine.is_empty():
            bulk.insert_frame(
                conn,
                accrual,
                mine.select(
                    "loan_id",
                    pl.lit(d).alias("business_date"),
                    "customer_id",
                    "book_id",
                    pl.lit(entry_id, pl.Int64).alias("entry_id"),
                    pl.col("acc_interest_fen").alias("interest_fen"),
                    pl.col("acc_penalty_fen").alias("penalty_fen"),
                    pl.col("acc_off_interest_fen").alias("off_interest_fen"),
                    pl.col("acc_off_penalty_fen").alias("off_penalty_fen"),
                ),
            )
        conn.execute(
            eod_chunk.insert(), {"business_date": d, "book_id": book_id, "figures": json.dumps(f)}
        )


def _span(frame: pl.DataFrame) -> str:
    ids = frame["loan_id"].to_list()
    return f"{min(ids)}-{max(ids)}"


def _zero_entry(conn: sa.Connection, book_id: int, d: date, p: Platform) -> int:
    """Accrual records whose on- and off-balance moves cancel out within a book still need an
    entry to belong to: an entry without lines."""
    return int(
        conn.execute(
            journal_entry.insert().returning(journal_entry.c.entry_id),
            {
                "book_id": book_id,
                "business_date": d,
                "kind": "accrual",
                "reference": f"accrual:{d}:net-zero",
                "created_at": p.now(),
            },
        ).scalar_one()
    )


def _block_lines(conn: sa.Connection, d: date, after: int, hi: int | None) -> None:
    """Block the lines of the range's customers with a loan overdue at the end of d (the live
    figure: a repayment made since already counts), unblock the others."""
    overdue = (
        sa.exists()
        .where(
            loan.c.customer_id == credit_line.c.customer_id,
            loan.c.status == LoanStatus.OPEN.value,
            loan.c.earliest_unpaid_due <= d,
        )
        .correlate(credit_line)
    )
    in_range = credit_line.c.customer_id > after
    if hi is not None:
        in_range = sa.and_(in_range, credit_line.c.customer_id <= hi)
    conn.execute(
        credit_line.update()
        .where(in_range, credit_line.c.overdue_blocked != overdue)
        .values(overdue_blocked=overdue)
    )


def _finish(
    conn: sa.Connection,
    d: date,
    run_id: int,
    result: DayResult,
    p: Platform,
    clocks: dict[str, float] | None = None,
) -> bool:
    """Provisions, ledger balances, reconciliation, the day's figures; then close the date.

    False (and nothing written) while loans of d are still held by a parallel runner."""
    clock = conn.execute(
        sa.select(business_clock).where(business_clock.c.id == 1).with_for_update()
    ).one()
    if clock.last_closed_date is not None and clock.last_closed_date >= d:
        _record_run(conn, run_id, "shared", result, p, clocks)  # another runner closed the date
        return True
    if conn.execute(sa.select(sa.func.count()).where(_due_filter(d))).scalar_one():
        return False
    per_book: dict[int, dict[str, int]] = defaultdict(dict)
    for book_id, text in conn.execute(
        sa.select(eod_chunk.c.book_id, eod_chunk.c.figures).where(eod_chunk.c.business_date == d)
    ):
        per_book[int(book_id)] = dc.add_figures(per_book[int(book_id)], json.loads(text))
    balances = _ledger_balances(conn, d, set(per_book))
    result.provision_fen = 0
    for book_id, f in per_book.items():
        held = -balances[book_id].get(Account.LOAN_LOSS_ALLOWANCE.value, 0)
        entry = provision_entry(f["allowance_fen"] - held)
        if entry is not None:
            post(
                conn,
                entry,
                book=book_id,
                business_date=d,
                created_at=p.now(),
                reference=f"provision:{d}",
            )
            result.provision_fen += f["allowance_fen"] - held
    balances = _ledger_balances(conn, d, set(per_book))
    rows = [
        {"book_id": b, "account": a, "business_date": d, "balance_fen": v}
        for b, accounts in balances.items()
        for a, v in accounts.items()
    ]
    if rows:
        conn.execute(gl_day.insert(), rows)
    mismatches = _reconcile(conn, d, per_book, balances)
    total = dc.add_figures({}, {})
    for f in per_book.values():
        total = dc.add_figures(total, f)
    for book_id, f in per_book.items():
        figs = PortfolioFigures(f["balance_fen"], f["npl_fen"], f["allowance_fen"])
        conn.execute(
            portfolio_day.insert(),
            {
                "business_date": d,
                "book_id": book_id,
                "figures": json.dumps(f),
                "npl_ratio": format_ratio(figs.npl_ratio),
                "provision_coverage": format_ratio(figs.provision_coverage),
                "loan_provision_ratio": format_ratio(figs.loan_provision_ratio),
            },
        )
    figs = PortfolioFigures(total["balance_fen"], total["npl_fen"], total["allowance_fen"])
    result.ratios = {
        "npl_ratio": format_ratio(figs.npl_ratio),
        "provision_coverage": format_ratio(figs.provision_coverage),
        "loan_provision_ratio": format_ratio(figs.loan_provision_ratio),
    }
    result.loans = total["loans"]
    result.interest_fen = total["interest_fen"]
    result.penalty_fen = total["penalty_fen"]
    result.overdue_loans = total["overdue_loans"]
    result.non_accrual_loans = total["non_accrual_loans"]
    result.write_off_candidates = total["write_off_candidates"]
    result.mismatches = mismatches
    result.reconciled = mismatches == 0
    result.reminders_due = _reminders_due(conn, d, p)
    result.blocked_lines = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(credit_line).where(credit_line.c.overdue_blocked)
        ).scalar_one()
    )
    conn.execute(business_clock.update().where(business_clock.c.id == 1).values(last_closed_date=d))
    _record_run(conn, run_id, "done", result, p, clocks)
    return True


def _ledger_balances(conn: sa.Connection, d: date, books: set[int]) -> dict[int, dict[str, int]]:
    """Each book's account balances at the end of d: the balances stored for d − 1 plus the
    lines of entries dated d (or, with none stored, every line dated d or before)."""
    prev = d - timedelta(days=1)
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stored = conn.execute(
        sa.select(gl_day.c.book_id, gl_day.c.account, gl_day.c.balance_fen).where(
            gl_day.c.business_date == prev
        )
    ).all()
    dated = journal_entry.c.business_date == d
    if not stored:
        dated = journal_entry.c.business_date <= d
    for b, a, v in stored:
        out[int(b)][a] += int(v)
    moves = conn.execute(
        sa.select(
            journal_line.c.book_id, journal_line.c.account, sa.func.sum(journal_line.c.amount_fen)
        )
        .join(journal_entry, journal_entry.c.entry_id == journal_line.c.entry_id)
        .where(dated)
        .group_by(journal_line.c.book_id, journal_line.c.account)
    )
    for b, a, v in moves:
        out[int(b)][a] += int(v)
    for b in books:
        out[b]
    return {b: dict(v) for b, v in out.items()}


def _reconcile(
    conn: sa.Connection,
    d: date,
    per_book: dict[int, dict[str, int]],
    balances: dict[int, dict[str, int]],
) -> int:
    """Loans against the books, account by account; each difference is recorded, and for the
    principal each loan whose own ledger lines disagree with it is listed too."""
    found = 0
    for book_id in sorted(set(per_book) | set(balances)):
        f = per_book.get(book_id, {})
        ledger = balances.get(book_id, {})
        for account, key, sign in RECONCILED:
            loans_say = sign * f.get(key, 0)
            books_say = ledger.get(account.value, 0)
            if loans_say == books_say:
                continue
            found += 1
            conn.execute(
                recon_issue.insert(),
                {
                    "business_date": d,
                    "kind": "books",
                    "book_id": book_id,
                    "account": account.value,
                    "expected_fen": loans_say,
                    "actual_fen": books_say,
                    "detail": (
                        f"{account.label}: loans add up to {format_yuan(loans_say)}, "
                        f"the ledger holds {format_yuan(books_say)}"
                    ),
                },
            )
            if account is Account.LOAN_PRINCIPAL:
                found += _principal_by_loan(conn, d, book_id)
    return found


def _principal_by_loan(conn: sa.Connection, d: date, book_id: int) -> int:
    """Loans of a book whose principal differs from their own 1301 lines dated d or before."""
    lines = (
        sa.select(
            journal_line.c.loan_id, sa.func.sum(journal_line.c.amount_fen).label("ledger_fen")
        )
        .join(journal_entry, journal_entry.c.entry_id == journal_line.c.entry_id)
        .where(
            journal_line.c.book_id == book_id,
            journal_line.c.account == Account.LOAN_PRINCIPAL.value,
            journal_entry.c.business_date <= d,
            journal_line.c.loan_id.is_not(None),
        )
        .group_by(journal_line.c.loan_id)
        .subquery()
    )
    expected = sa.case((loan.c.written_off_on.is_(None), loan.c.snap_principal_fen), else_=0)
    ledger = sa.func.coalesce(lines.c.ledger_fen, 0)
    rows = conn.execute(
        sa.select(loan.c.loan_id, expected.label("expected"), ledger.label("ledger"))
        .select_from(loan.outerjoin(lines, lines.c.loan_id == loan.c.loan_id))
        .where(loan.c.book_id == book_id, loan.c.closed_through >= d, expected != ledger)
        .limit(100)
    ).all()
    for r in rows:
        conn.execute(
            recon_issue.insert(),
            {
                "business_date": d,
                "kind": "loan",
                "book_id": book_id,
                "account": Account.LOAN_PRINCIPAL.value,
                "loan_id": r.loan_id,
                "expected_fen": int(r.expected),
                "actual_fen": int(r.ledger),
                "detail": (
                    f"loan {r.loan_id}: principal {format_yuan(int(r.expected))}, its ledger "
                    f"lines {format_yuan(int(r.ledger))}"
                ),
            },
        )
    return len(rows)


def _reminders_due(conn: sa.Connection, d: date, p: Platform) -> int:
    """Loans with an installment due 3 days or 1 day after the next open date (servicing §3)."""
    today = d + timedelta(days=1)
    days = [today + timedelta(days=n) for n in p.settings.reminder_days]
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                loan.c.status == LoanStatus.OPEN.value, loan.c.next_due.in_(days)
            )
        ).scalar_one()
    )


def _record_run(
    conn: sa.Connection,
    run_id: int,
    status: str,
    result: DayResult,
    p: Platform,
    clocks: dict[str, float] | None,
) -> None:
    _set_run(
        conn,
        run_id,
        status=status,
        step="done",
        finished_at=p.now(),
        loans=result.loans,
        interest_fen=result.interest_fen,
        penalty_fen=result.penalty_fen,
        overdue_loans=result.overdue_loans,
        blocked_lines=result.blocked_lines,
        chunks=result.chunks,
        non_accrual_loans=result.non_accrual_loans,
        write_off_candidates=result.write_off_candidates,
        provision_fen=result.provision_fen,
        reminders_due=result.reminders_due,
        reconciled=result.reconciled,
        mismatches=result.mismatches,
        detail=json.dumps(
            {
                "ratios": result.ratios,
                "seconds": {k: round(v, 3) for k, v in (clocks or {}).items()},
            }
        ),
    )
