"""End of day (servicing §1, lending rules §6–§8): it closes business dates, never moves money.

For each date d from the last closed date + 1 to the day before the open date, in this order:

1. the day's payment results are recorded and the rail reconciled (``payments.before_close``);
2. loans are closed chunk by chunk (a range of loan ids, in one transaction each): accrual,
   aging and penalty (as columns for quiet loans, by the domain for loans with a repayment, a
   due date or a write-off that day), on- or off-balance booking (non-accrual from 91 DPD), the
   per-loan accrual records, one accrual entry per book and the chunk's accrual figures;
3. then, in the transaction that closes the date: five-tier classification by borrower over the
   closed loans, the allowance each requires, provisions brought to the required level (the
   change of the total is booked), the ledger's balances for d (the previous day's plus d's
   movements) reconciled with the sum over loans, account by account, every difference
   recorded; the day's portfolio figures, the reminders due, the run record;
4. after it, in short transactions: the loans' new tiers, line blocks and unblocks.

Exactly once: a loan's snapshot moves only from d − 1 to d (``closed_through``), in the same
transaction as its accrual records, its entry and the chunk's figures; everything after reads
the stored loans. A crash anywhere, followed by a rerun, gives the books of a clean run.
While it runs, money keeps moving on the open date: the run starts only once every transaction
that read the previous open date has committed (an advisory lock on PostgreSQL; SQLite writes
one at a time).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from microloan.service.eod_pace import Pacer
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

CHUNK = 50_000  # loan ids read and computed at once
WRITE_BATCH = 10_000  # loans written per transaction
BUSY_WRITE_BATCH = 2_500  # … while customers are active (service/eod_pace.py)
THREADS = 2  # chunks in flight at once on PostgreSQL
_LOCK = threading.Lock()
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
    run_id: int = 0
    ratios: dict[str, str] = field(default_factory=dict)
    tier_changes: pl.DataFrame | None = None  # loans whose tier the close changed

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
    result.run_id = run_id
    clocks: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    from microloan.service import payments  # the rail's results for d, before its loans

    payments.before_close(p, d)
    clocks["payments"] += time.perf_counter() - t0
    try:
        return _close_loans_and_finish(p, d, run_id, result, clocks, progress)
    except BaseException:
        p.transaction(lambda conn: _set_run(conn, run_id, status="failed", failures=1))
        raise


def _close_loans_and_finish(
    p: Platform,
    d: date,
    run_id: int,
    result: DayResult,
    clocks: dict[str, float],
    progress: Progress | None,
) -> DayResult:
    pacer = Pacer(p)  # while customers are active, the run gives way to them
    total, top = _count_due(p, d)
    p.transaction(lambda conn: _set_run(conn, run_id, total=total, step="loans"))
    waited_s = 0.0
    frames: list[pl.DataFrame] = []  # the closed loans' classification columns, kept for _finish

    def chunk(start: int, top: int) -> None:
        while True:
            try:
                _close_chunk(p, d, result, start, top, clocks, frames, pacer)
                return
            except _Moved:
                continue  # another runner closed some of these loans: read the range again

    while True:
        starts = list(range(0, top, CHUNK)) if total else []
        # PostgreSQL: two chunks at a time, one computing while the other is written
        threads = THREADS if p.is_postgres and len(starts) > 1 else 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(lambda start, top=top: chunk(start, top), starts):
                if progress is not None:
                    progress(d, result.loans, max(total, result.loans))
        if pacer.rested_s:
            clocks["rested"] = pacer.rested_s
        done = p.transaction(lambda conn: _finish(conn, d, run_id, result, p, clocks, frames))
        if done:
            _after_close(p, d, result, pacer)
            return result
        total, top = _count_due(p, d)
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


def _done_filter(d: date) -> Any:
    """Loans closed for d (a loan drawn on the open date meanwhile also stands at d: not these)."""
    return sa.and_(
        loan.c.closed_through == d,
        loan.c.drawn_on <= d,
        sa.or_(
            loan.c.status == LoanStatus.OPEN.value,
            sa.and_(loan.c.status == LoanStatus.CLOSED.value, loan.c.closed_on >= d),
        ),
    )


def _count_due(p: Platform, d: date) -> tuple[int, int]:
    """How many loans are still to close for d, and the highest loan id among them."""
    with p.engine.connect() as conn:
        n, top = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(loan.c.loan_id), 0)).where(
                _due_filter(d)
            )
        ).one()
    return int(n), int(top)


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
    p: Platform,
    d: date,
    result: DayResult,
    after: int,
    top: int,
    clocks: dict[str, float],
    frames: list[pl.DataFrame] | None = None,
    pacer: Pacer | None = None,
) -> None:
    """Close the loans of d with ids in (after, after + CHUNK]: read and computed at once, then
    written in batches of WRITE_BATCH loans, one short transaction each, so that a repayment
    waiting for a loan's row lock waits for one batch at most. While customers are active the
    run does one piece at a time and rests after each (``Pacer``)."""
    pacer = pacer or Pacer(p)
    with pacer.piece(), p.engine.connect() as conn:
        work = _compute_chunk(conn, d, after, clocks)
    if work is None:
        return
    closed, inst_updates, fixed = work
    # smaller batches while customers are active: less log for their commits to wait on
    for batch in pacer.batches(closed, WRITE_BATCH, BUSY_WRITE_BATCH):
        ids = set(batch["loan_id"].to_list())
        with pacer.piece():
            p.transaction(
                lambda conn, batch=batch, ids=ids: _write_batch(  # type: ignore[misc]
                    conn,
                    d,
                    p,
                    result,
                    batch,
                    [u for u in inst_updates if u["b_loan_id"] in ids],
                    None if fixed is None else fixed.filter(pl.col("loan_id").is_in(list(ids))),
                    clocks,
                    frames,
                )
            )


def _compute_chunk(
    conn: sa.Connection, d: date, after: int, clocks: dict[str, float]
) -> tuple[pl.DataFrame, list[dict[str, Any]], pl.DataFrame | None] | None:
    hi = after + CHUNK
    _no_jit(conn)
    t0 = time.perf_counter()
    frame = bulk.read_frame(
        conn,
        sa.select(*_READ)
        .where(loan.c.loan_id > after, loan.c.loan_id <= hi, _due_filter(d))
        .order_by(loan.c.loan_id),
        _READ_SCHEMA,
    )
    _tick(clocks, "read", t0)
    if frame.is_empty():
        return None
    t0 = time.perf_counter()
    paid_today = set(
        conn.execute(
            sa.select(repayment.c.loan_id).where(
                repayment.c.business_date == d,
                repayment.c.loan_id > after,
                repayment.c.loan_id <= hi,
            )
        ).scalars()
    )
    offs = {
        r.loan_id: r
        for r in conn.execute(
            sa.select(write_off).where(
                write_off.c.business_date == d,
                write_off.c.loan_id > after,
                write_off.c.loan_id <= hi,
            )
        )
    }
    eventful = pl.col("loan_id").is_in(list(paid_today | set(offs)))
    due_today = (pl.col("next_due") == d).fill_null(False) & ~eventful
    quiet = frame.filter(~eventful & ~due_today)
    falling_due = frame.filter(due_today)
    busy = frame.filter(eventful)
    parts = [dc.close_quiet(quiet.select(list(dc.INPUT)), d)]
    fixed: pl.DataFrame | None = None
    if not falling_due.is_empty():
        closed_due, fixed = dc.close_due(
            falling_due.select(list(dc.INPUT)), _due_installments(conn, falling_due, d), d
        )
        parts.append(closed_due)
    inst_updates: list[dict[str, Any]] = []
    if not busy.is_empty():
        parts.append(_close_eventful(conn, busy, d, offs, inst_updates))
    # in id order, so that each write batch updates a narrow range of the loan table's key
    closed = pl.concat(parts).sort("loan_id")
    _tick(clocks, "compute", t0)
    return closed, inst_updates, fixed


def _write_batch(
    conn: sa.Connection,
    d: date,
    p: Platform,
    result: DayResult,
    closed: pl.DataFrame,
    inst_updates: list[dict[str, Any]],
    fixed: pl.DataFrame | None,
    clocks: dict[str, float],
    frames: list[pl.DataFrame] | None,
) -> None:
    _no_jit(conn)
    figures = dc.chunk_figures(closed)
    _write_chunk(conn, d, p, closed, figures, inst_updates, clocks)
    if fixed is not None and not fixed.is_empty():
        bulk.update_from_frame(
            conn, installment, fixed, key=("loan_id", "period"), columns=("interest_fen",)
        )
    if result.run_id:  # progress that `eod status` shows while the run goes on
        conn.execute(
            eod_run.update()
            .where(eod_run.c.run_id == result.run_id)
            .values(loans=eod_run.c.loans + closed.height, chunks=eod_run.c.chunks + 1)
        )
    if frames is not None:
        frames.append(closed.select(list(dc.CLASSIFY_INPUT)))
    with _LOCK:
        for f in figures.values():
            result.loans += f["loans"]
            result.interest_fen += f["interest_fen"]
            result.penalty_fen += f["penalty_fen"]
        result.chunks += 1


def _no_jit(conn: sa.Connection) -> None:
    """PostgreSQL: no JIT compilation for these short bulk statements (it costs more than it
    saves, and its estimates come from statistics a day's run has just made stale); and, where
    the database lets this role, the run's write-ahead log compressed (lz4): the run rewrites
    every open loan's page, each first written whole after a checkpoint, and customers'
    commits flush the log behind it, so a smaller log is a shorter wait for them."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")
        _compress_wal(conn)


# per database: whether its role may set ``wal_compression`` and the server has lz4
_WAL_COMPRESSION: dict[str, bool] = {}


def _compress_wal(conn: sa.Connection) -> None:
    """``SET LOCAL wal_compression = lz4`` where the role may (a superuser, or PostgreSQL 15's
    ``GRANT SET ON PARAMETER wal_compression``) and the server has lz4. The first time for a
    database it is tried in a savepoint of this transaction, so a refusal costs nothing else and
    no second connection is needed (a chunk's pool may have none to spare)."""
    key = conn.engine.url.render_as_string(hide_password=True)
    allowed = _WAL_COMPRESSION.get(key)
    if allowed:
        conn.exec_driver_sql("SET LOCAL wal_compression = lz4")
    elif allowed is None:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("SET LOCAL wal_compression = lz4")
            _WAL_COMPRESSION[key] = True
        except sa.exc.DBAPIError:
            _WAL_COMPRESSION[key] = False


def _tick(clocks: dict[str, float], step: str, since: float) -> None:
    with _LOCK:
        clocks[step] += time.perf_counter() - since


def _due_installments(conn: sa.Connection, loans: pl.DataFrame, d: date) -> pl.DataFrame:
    """For each loan, its installment due on d and the due date of the one after it."""
    ids = loans["loan_id"].to_list()
    rows = conn.execute(
        sa.select(
            installment.c.loan_id,
            installment.c.period,
            installment.c.due_date,
            installment.c.principal_fen - installment.c.principal_paid_fen,
            installment.c.interest_paid_fen,
        ).where(installment.c.loan_id.in_(ids), installment.c.due_date >= d)
    ).all()
    frame = pl.DataFrame(
        [tuple(r) for r in rows],
        schema={
            "loan_id": pl.Int64,
            "period": pl.Int64,
            "due_date": pl.Date,
            "principal_left_fen": pl.Int64,
            "interest_paid_fen": pl.Int64,
        },
        orient="row",
    )
    following = (
        frame.filter(pl.col("due_date") > d)
        .group_by("loan_id")
        .agg(pl.col("due_date").min().alias("following_due"))
    )
    return (
        frame.filter(pl.col("due_date") == d)
        .join(following, on="loan_id", how="left")
        .select(list(dc.DUE_INPUT))
    )


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
                "written_off_on": r.written_off_on,
                "tier": r.tier,
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
)


class _Moved(RuntimeError):
    """A loan of the chunk was closed by another runner meanwhile: the chunk is read again."""


def _write_chunk(
    conn: sa.Connection,
    d: date,
    p: Platform,
    closed: pl.DataFrame,
    figures: dict[int, dict[str, int]],
    inst_updates: list[dict[str, Any]],
    clocks: dict[str, float],
) -> None:
    # the accrual records and entries first: the loans' rows are locked (against a repayment
    # of the same loan) only from the update to the commit
    t1 = time.perf_counter()
    accruing = closed.filter(
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
            _insert_accruals(
                conn,
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
    _tick(clocks, "accrual", t1)
    t0 = time.perf_counter()
    written = bulk.update_from_frame(
        conn,
        loan,
        closed,
        key="loan_id",
        columns=_LOAN_SET,
        constants={"closed_through": d},
        guard=("closed_through", d - timedelta(days=1)),
    )
    if written != closed.height:
        raise _Moved(f"{closed.height - written} loans of the chunk moved under it")
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
    _tick(clocks, "update", t0)


def _insert_accruals(conn: sa.Connection, frame: pl.DataFrame) -> None:
    """The records; one already there means another runner closed these loans meanwhile."""
    try:
        bulk.insert_frame(conn, accrual, frame)
    except Exception as exc:  # sqlite3 through SQLAlchemy, or psycopg's COPY directly
        duplicate = (
            isinstance(exc, sa.exc.IntegrityError) or getattr(exc, "sqlstate", "") == "23505"
        )
        if not duplicate:
            raise
        raise _Moved("the accrual records of these loans are already written") from None


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


def _after_close(p: Platform, d: date, result: DayResult, pacer: Pacer) -> None:
    """Once the date is closed: each loan's new tier and the lines' overdue blocks, in short
    transactions, so that no repayment waits for the closing transaction to hold those rows.
    Both are derived again by the next close (a tier differing from the stored one is written
    then; repayments recompute a line's block themselves), so a crash here loses nothing."""
    changes = result.tier_changes
    if changes is not None:
        for batch in pacer.batches(changes.sort("loan_id"), WRITE_BATCH, BUSY_WRITE_BATCH):
            with pacer.piece():
                p.transaction(
                    lambda conn, batch=batch: bulk.update_from_frame(  # type: ignore[misc]
                        conn, loan, batch, key="loan_id", columns=("tier",)
                    )
                )
        result.tier_changes = None
    result.blocked_lines = p.transaction(lambda conn: _block_lines(conn, d))
    p.transaction(lambda conn: _set_run(conn, result.run_id, blocked_lines=result.blocked_lines))


def _block_lines(conn: sa.Connection, d: date) -> int:
    """Block the lines with a loan overdue at the end of d (the live figure: a repayment made
    since already counts), unblock the others; only lines that change are written."""
    overdue_loans = sa.select(loan.c.customer_id).where(
        loan.c.status == LoanStatus.OPEN.value, loan.c.earliest_unpaid_due <= d
    )
    conn.execute(
        credit_line.update()
        .where(~credit_line.c.overdue_blocked, credit_line.c.customer_id.in_(overdue_loans))
        .values(overdue_blocked=True)
    )
    still = (
        sa.exists()
        .where(
            loan.c.customer_id == credit_line.c.customer_id,
            loan.c.status == LoanStatus.OPEN.value,
            loan.c.earliest_unpaid_due <= d,
        )
        .correlate(credit_line)
    )
    conn.execute(
        credit_line.update()
        .where(credit_line.c.overdue_blocked, ~still)
        .values(overdue_blocked=False)
    )
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(credit_line).where(credit_line.c.overdue_blocked)
        ).scalar_one()
    )


def _finish(
    conn: sa.Connection,
    d: date,
    run_id: int,
    result: DayResult,
    p: Platform,
    clocks: dict[str, float] | None = None,
    frames: list[pl.DataFrame] | None = None,
) -> bool:
    """Provisions, ledger balances, reconciliation, the day's figures; then close the date.

    False (and nothing written) while loans of d are still held by a parallel runner."""
    clock = conn.execute(
        sa.select(business_clock).where(business_clock.c.id == 1).with_for_update()
    ).one()
    if clock.last_closed_date is not None and clock.last_closed_date >= d:
        _record_run(conn, run_id, "shared", result, p, clocks)  # another runner closed the date
        return True
    started = time.perf_counter()
    # one pass over the loans: still due (a parallel runner holds some), closed, reminders due
    today = d + timedelta(days=1)
    remind_on = [today + timedelta(days=n) for n in p.settings.reminder_days]
    due, done, reminders = conn.execute(
        sa.select(
            sa.func.count().filter(_due_filter(d)),
            sa.func.count().filter(_done_filter(d)),
            sa.func.count().filter(
                loan.c.status == LoanStatus.OPEN.value, loan.c.next_due.in_(remind_on)
            ),
        )
    ).one()
    if due:
        return False
    _no_jit(conn)
    per_book: dict[int, dict[str, int]] = defaultdict(dict)
    for book_id, text in conn.execute(
        sa.select(eod_chunk.c.book_id, eod_chunk.c.figures).where(eod_chunk.c.business_date == d)
    ):
        per_book[int(book_id)] = dc.add_figures(per_book[int(book_id)], json.loads(text))
    t0 = time.perf_counter()
    closed = _closed_loans(conn, d, frames or [], done)
    classified, book_figures = dc.classify_book(closed, d)
    for book_id, f in book_figures.items():
        per_book[book_id] = dc.add_figures(per_book[book_id], f)
    # written after the date closes, in short transactions of their own (see _after_close)
    result.tier_changes = classified.filter(pl.col("tier") != pl.col("old_tier")).select(
        "loan_id", "tier"
    )
    if clocks is not None:
        clocks["classify"] += time.perf_counter() - t0
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
    result.reminders_due = int(reminders)
    conn.execute(business_clock.update().where(business_clock.c.id == 1).values(last_closed_date=d))
    if clocks is not None:
        clocks["finish"] = time.perf_counter() - started
    _record_run(conn, run_id, "done", result, p, clocks)
    # runs of d that died half way (a runner still alive records itself "shared" when it ends)
    conn.execute(
        eod_run.update()
        .where(
            eod_run.c.business_date == d,
            eod_run.c.status == "running",
            eod_run.c.run_id != run_id,
        )
        .values(status="interrupted")
    )
    return True


def _closed_loans(
    conn: sa.Connection, d: date, frames: list[pl.DataFrame], done: int
) -> pl.DataFrame:
    """The ``done`` loans closed for d, as this run kept them, or read back when it did not
    close them all (a rerun after a crash, a parallel runner)."""
    if frames and sum(f.height for f in frames) == done:
        return pl.concat(frames)
    return bulk.read_frame(
        conn,
        sa.select(*(loan.c[k] for k in dc.CLASSIFY_INPUT)).where(_done_filter(d)),
        dc.CLASSIFY_INPUT,
    )


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
