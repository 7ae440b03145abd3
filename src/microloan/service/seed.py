"""``microloan seed-portfolio --loans N``: a realistic book of N open loans, written in bulk,
for benchmarks and demos.

The book as it would stand after closing yesterday: about nine loans in ten are current (drawn
in the last four weeks, no due date passed yet) and the rest are in arrears since their first
installment, spread over special mention, substandard, doubtful and loss. Amounts, terms,
methods and rates follow a lender's usual mix. Each loan is computed by the domain itself (its
schedule, its days charged, interest on balance until it stopped accruing at 91 DPD and off
balance after), and the books hold what they would: a disbursement entry per loan and the
interest and penalty accrued so far, per loan and per book. The next end of day books the
allowance. ``ledger check`` finds the book consistent.

At most ``POOL`` (200,000) distinct loans are computed, in worker processes, chunk by chunk.
A bigger book repeats the pool's profiles: the rest of it is made of copies of the pool's rows
(customers, lines, loans, installments, disbursement entries and their lines, accrual records)
with new customer, loan and entry ids, column by column in polars, and written chunk by chunk,
so memory stays bounded whatever N. Every copy is as consistent as its original (a loan's
figures depend on its dates and terms, never on its id), so ten million loans are 50 copies of
the same 200,000 profiles under different names.

Each chunk is written in its own transaction, with COPY on PostgreSQL (two chunks at a time, on
two connections). There, as a superuser, foreign keys are not checked row by row while the
seeded rows go in (``session_replication_role = replica``, for those transactions only): each
chunk carries its own customers and loans, and ``ledger check`` proves the result.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.books import PLATFORM_BOOK, Account, day_accrual_entry
from microloan.domain.classification import NON_ACCRUAL_DPD
from microloan.domain.line import LineStatus, LoanStatus
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method, capped_schedule
from microloan.errors import RuleViolation
from microloan.service.clock import read_clock
from microloan.service.platform import Platform
from microloan.store import bulk
from microloan.store import loans as repo
from microloan.store.ledger import book_id
from microloan.store.schema import (
    accrual,
    business_clock,
    credit_line,
    customer,
    gl_day,
    installment,
    journal_entry,
    journal_line,
    loan,
)

CHUNK = 50_000
POOL = 200_000  # loans computed by the domain at most; a bigger book repeats them
WRITERS = 2  # chunks written at once on PostgreSQL
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉梅"
# (share of loans, lowest DPD, highest DPD): current, then arrears by tier
MIX = ((0.90, 0, 0), (0.04, 1, 90), (0.03, 91, 270), (0.015, 271, 360), (0.015, 361, 420))
TERMS = ((3, 0.2), (6, 0.3), (12, 0.4), (24, 0.1))
RATES = (200_000, 300_000, 400_000, 500_000, 600_000)  # 0.0002 … 0.0006 a day
TOTALS = ("interest", "penalty", "off_interest", "off_penalty", "principal")
Progress = Callable[[int, int], None]
Frames = dict[str, pl.DataFrame]


def seed_portfolio(
    p: Platform,
    loans: int,
    *,
    seed: int = 1,
    progress: Progress | None = None,
    pool: int = POOL,
) -> dict[str, Any]:
    if loans <= 0:
        raise RuleViolation("must be at least 1", code="seed.loans", field="loans")
    if pool <= 0:
        raise RuleViolation("must be at least 1", code="seed.pool", field="pool")
    with p.engine.connect() as conn:
        clock = read_clock(conn, p.now)
        booked = conn.execute(sa.select(sa.func.count()).select_from(loan)).scalar_one()
        if booked and clock.last_closed_date != clock.open_date - timedelta(days=1):
            raise RuleViolation(
                "close every date before the open date first (`microloan eod`), so that the "
                "seeded loans join a closed book",
                code="seed.dates_pending",
                field="loans",
            )
        first_customer = 1 + int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(customer.c.customer_id), 0))
            ).scalar_one()
        )
        first_loan = 1 + int(
            conn.execute(sa.select(sa.func.coalesce(sa.func.max(loan.c.loan_id), 0))).scalar_one()
        )
        first_entry = 1 + int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(journal_entry.c.entry_id), 0))
            ).scalar_one()
        )
        book = book_id(conn, PLATFORM_BOOK)
        unchecked = (
            p.is_postgres
            and conn.exec_driver_sql("SELECT current_setting('is_superuser') = 'on'").scalar_one()
        )
    yesterday = clock.open_date - timedelta(days=1)
    # the pool: loans computed by the domain, ids from the first free ones; every id block
    # (customers, loans, entries) spans ``size`` ids, so copy k moves each id on by k × size
    size = min(loans, pool)
    accrual_entry = first_entry + loans  # the seeded accrual's entry, after the disbursements
    jobs = []
    cid, lid, eid, left, n = first_customer, first_loan, first_entry, size, 0
    while left > 0:
        chunk = min(CHUNK, left)
        jobs.append((seed * 1_000_003 + n, chunk, cid, lid, eid, book, yesterday, p.now()))
        # each chunk numbers its customers from its own block (at most one per loan)
        cid, lid, eid, left, n = cid + chunk, lid + chunk, eid + chunk, left - chunk, n + 1
    writer = _Writer(p, accrual_entry, bool(unchecked), loans, progress)
    kept: list[Frames] = []
    workers = max(1, min(len(jobs), (os.cpu_count() or 1)))
    try:
        with ProcessPoolExecutor(max_workers=workers) as procs:
            for frames in procs.map(_chunk, jobs):
                kept.append(frames)
                writer.put(frames)
        left, copy = loans - size, 1
        while left > 0:
            for frames in kept:
                part = _clone(frames, copy * size, left)
                writer.put(part)
                left -= part["loans"].height
                if left == 0:
                    break
            copy += 1
    finally:
        writer.close()
    totals = writer.totals
    last_customer = max(writer.last_customer, first_customer - 1)
    p.transaction(
        lambda conn: _close_books(
            conn, p, book, yesterday, totals, accrual_entry, last_customer + 1, first_loan + loans
        )
    )
    if p.is_postgres:  # fresh statistics, so the planner knows the book's size
        p.transaction(lambda conn: conn.exec_driver_sql("ANALYZE"))
    return {
        "loans": loans,
        "customers": writer.customers,
        "principal_fen": totals["principal"],
        "as_of": yesterday.isoformat(),
    }


class _Writer:
    """Writes chunks in order of arrival, each in its own transaction: on PostgreSQL up to
    ``WRITERS`` at once (on as many connections), one at a time on SQLite. At most a few chunks
    wait in memory; progress is reported in order as they commit."""

    def __init__(
        self,
        p: Platform,
        accrual_entry: int,
        unchecked: bool,
        total: int,
        progress: Progress | None,
    ) -> None:
        self.p, self.accrual_entry, self.unchecked = p, accrual_entry, unchecked
        self.total, self.progress = total, progress
        self.threads = WRITERS if p.is_postgres else 1
        self.pool = ThreadPoolExecutor(max_workers=self.threads)
        self.pending: deque[Future[tuple[int, int, int, dict[str, int]]]] = deque()
        self.done = self.customers = self.last_customer = 0
        self.totals = dict.fromkeys(TOTALS, 0)

    def put(self, frames: Frames) -> None:
        while len(self.pending) > self.threads:
            self._collect()
        self.pending.append(self.pool.submit(self._write, frames))

    def close(self) -> None:
        try:
            while self.pending:
                self._collect()
        finally:
            for f in self.pending:
                f.cancel()
            self.pool.shutdown(wait=True)

    def _collect(self) -> None:
        loans, customers, last_customer, totals = self.pending.popleft().result()
        self.done += loans
        self.customers += customers
        self.last_customer = max(self.last_customer, last_customer)
        for k in TOTALS:
            self.totals[k] += totals[k]
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _write(self, frames: Frames) -> tuple[int, int, int, dict[str, int]]:
        rows = frames["loans"]
        sums = rows.select(
            pl.col("interest_recv_fen").sum().alias("interest"),
            pl.col("penalty_recv_fen").sum().alias("penalty"),
            pl.col("interest_memo_fen").sum().alias("off_interest"),
            pl.col("penalty_memo_fen").sum().alias("off_penalty"),
            pl.col("principal_fen").sum().alias("principal"),
        ).row(0, named=True)
        records = rows.filter(
            pl.col("interest_booked_fen") + pl.col("penalty_booked_fen") > 0
        ).select(
            "loan_id",
            pl.col("accrued_through").alias("business_date"),
            "customer_id",
            "book_id",
            pl.lit(self.accrual_entry, pl.Int64).alias("entry_id"),
            pl.col("interest_recv_fen").alias("interest_fen"),
            pl.col("penalty_recv_fen").alias("penalty_fen"),
            pl.col("interest_memo_fen").alias("off_interest_fen"),
            pl.col("penalty_memo_fen").alias("off_penalty_fen"),
        )

        def work(conn: sa.Connection) -> None:
            if self.unchecked:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            _write(conn, frames)
            bulk.insert_frame(conn, accrual, records)

        self.p.transaction(work)
        people = frames["customers"]
        last = int(people["customer_id"].max() or 0)  # type: ignore[arg-type]
        return rows.height, people.height, last, {k: int(sums[k] or 0) for k in TOTALS}


def _clone(frames: Frames, offset: int, limit: int) -> Frames:
    """A copy of a pool chunk, its ids moved on by ``offset``, cut after ``limit`` loans (the
    cut customer's line then holds only the loans copied)."""
    loans = frames["loans"].head(limit)
    ids = pl.col("loan_id")
    cut = loans.height < frames["loans"].height
    if cut:
        last = int(loans["loan_id"].max())  # type: ignore[arg-type]
        people = loans["customer_id"].unique()
        customers = frames["customers"].filter(pl.col("customer_id").is_in(people.implode()))
        drawn = loans.group_by("customer_id").agg(
            pl.col("principal_fen").sum().alias("outstanding_principal_fen"),
            pl.len().cast(pl.Int64).alias("open_loans"),
            pl.col("over_since").is_not_null().any().alias("overdue_blocked"),
        )
        lines = (
            frames["lines"]
            .drop("outstanding_principal_fen", "open_loans", "overdue_blocked")
            .join(drawn, on="customer_id", how="inner")
            .with_columns(
                limit_fen=(pl.col("outstanding_principal_fen") + 99_999) // 100_000 * 100_000
            )
            .select(frames["lines"].columns)
        )
        insts = frames["installments"].filter(ids <= last)
        entries = frames["entries"].filter(ids <= last)
        jlines = frames["journal_lines"].filter(ids <= last)
    else:
        customers, lines = frames["customers"], frames["lines"]
        insts, entries = frames["installments"], frames["entries"]
        jlines = frames["journal_lines"]
    moved = [(pl.col(c) + offset).alias(c) for c in ("customer_id", "loan_id", "entry_id")]
    return {
        "customers": customers.with_columns(moved[0]),
        "lines": lines.with_columns(moved[0]),
        "loans": loans.with_columns(moved[:2]).with_columns(
            pl.format("seed:{}", ids).alias("idempotency_key")
        ),
        "installments": insts.with_columns(moved[:2]),
        "entries": entries.with_columns(moved).with_columns(
            pl.format("seed:{}", ids).alias("reference")
        ),
        "journal_lines": jlines.with_columns(moved),
    }


def _chunk(job: tuple[Any, ...]) -> Frames:
    """One chunk's rows, computed in a worker process."""
    rng_seed, size, first_cid, first_lid, first_eid, book, yesterday, now = job
    rng = random.Random(rng_seed)
    customers: list[tuple[Any, ...]] = []
    lines: dict[int, list[int]] = {}
    loans: list[dict[str, Any]] = []
    insts: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    jlines: list[tuple[Any, ...]] = []
    cid = first_cid
    per_customer = 0
    for k in range(size):
        if k == 0 or per_customer >= 3 or rng.random() < 0.8:  # about 1.25 loans a customer
            if k:
                cid += 1
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            customers.append((cid, name, now))
            lines[cid] = [0, 0, rng.choice(RATES), 0]  # outstanding, loans, rate, overdue
            per_customer = 0
        per_customer += 1
        lid = first_lid + k
        row = _one_loan(rng, cid, lid, book, yesterday, now, lines[cid][2])
        state = row.pop("_state")
        loans.append(row)
        for i in state.installments:
            insts.append(
                (
                    lid,
                    i.period,
                    cid,
                    i.due_date,
                    i.principal_fen,
                    i.interest_fen,
                    i.principal_paid_fen,
                    i.interest_paid_fen,
                )
            )
        eid = first_eid + k
        principal = row["principal_fen"]
        entries.append((eid, book, cid, lid, row["drawn_on"], "disbursement", f"seed:{lid}", now))
        jlines.append((eid, book, cid, lid, Account.LOAN_PRINCIPAL.value, principal))
        jlines.append((eid, book, cid, lid, Account.SETTLEMENT.value, -principal))
        lines[cid][0] += principal
        lines[cid][1] += 1
        lines[cid][3] |= row["over_since"] is not None
    return {
        "customers": pl.DataFrame(
            customers,
            schema={
                "customer_id": pl.Int64,
                "name": pl.String,
                "created_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        ),
        "lines": pl.DataFrame(
            [
                (
                    c,
                    -(-v[0] // 100_000) * 100_000,
                    v[2],
                    LineStatus.ACTIVE.value,
                    v[0],
                    0,
                    v[1],
                    bool(v[3]),
                    now,
                )
                for c, v in lines.items()
            ],
            schema={
                "customer_id": pl.Int64,
                "limit_fen": pl.Int64,
                "rate_units": pl.Int64,
                "status": pl.String,
                "outstanding_principal_fen": pl.Int64,
                "pending_principal_fen": pl.Int64,
                "open_loans": pl.Int64,
                "overdue_blocked": pl.Boolean,
                "updated_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        ),
        "loans": pl.DataFrame(loans, schema=_LOAN_SCHEMA, orient="row"),
        "installments": pl.DataFrame(insts, schema=_INST_SCHEMA, orient="row"),
        "entries": pl.DataFrame(entries, schema=_ENTRY_SCHEMA, orient="row"),
        "journal_lines": pl.DataFrame(jlines, schema=_JLINE_SCHEMA, orient="row"),
    }


def _one_loan(
    rng: random.Random,
    cid: int,
    lid: int,
    book: int,
    yesterday: date,
    now: Any,
    rate_units: int,
) -> dict[str, Any]:
    share = rng.random()
    low = high = 0
    for weight, lo, hi in MIX:
        if share < weight:
            low, high = lo, hi
            break
        share -= weight
    term = rng.choices([t for t, _ in TERMS], [w for _, w in TERMS])[0]
    method = Method.EQUAL_INSTALLMENT if rng.random() < 0.7 else Method.EQUAL_PRINCIPAL
    principal = 100 * 100 * rng.choice((5, 10, 20, 30, 50, 80, 100, 150, 200, 300, 500))
    if high == 0:
        drawn_on = yesterday - timedelta(days=rng.randint(0, 26))
    else:  # in arrears since the first due date, about dpd days ago
        dpd = rng.randint(low, high)
        drawn_on = yesterday - timedelta(days=dpd + 30)
        term = max(term, 3)
    schedule = capped_schedule(principal, term, DailyRate(rate_units), method, drawn_on)
    state = L.open_loan(schedule)
    through = max(yesterday, drawn_on)
    full = L.advance(state, through)
    view = L.snapshot_view(full)
    dpd_now = 0 if view.overdue_since is None else (through - view.overdue_since).days
    # accrual stops (goes off balance) from the day after the loan first stands at 91 DPD
    if view.overdue_since is not None and dpd_now > NON_ACCRUAL_DPD:
        on_state = L.advance(state, view.overdue_since + timedelta(days=NON_ACCRUAL_DPD))
        on_i, on_p = on_state.interest_accrued_fen, on_state.penalty_accrued_fen
    else:
        on_i, on_p = full.interest_accrued_fen, full.penalty_accrued_fen
    off_i = full.interest_accrued_fen - on_i
    off_p = full.penalty_accrued_fen - on_p
    row = {
        "loan_id": lid,
        "customer_id": cid,
        "book_id": book,
        "status": LoanStatus.OPEN.value,
        "principal_fen": principal,
        "term_months": term,
        "method": method.value,
        "rate_units": schedule.rate.units,
        "line_rate_units": rate_units,
        "drawn_on": drawn_on,
        "accepted_at": now,
        "idempotency_key": f"seed:{lid}",
        "principal_outstanding_fen": full.principal_outstanding_fen,
        "earliest_unpaid_due": L.earliest_unpaid_due(full),
        "closed_through": through,
        **repo.snapshot_columns(full),
        "interest_booked_fen": full.interest_accrued_fen,
        "penalty_booked_fen": full.penalty_accrued_fen,
        "dpd": dpd_now,
        **repo.eod_columns(full),
        "interest_recv_fen": on_i,
        "penalty_recv_fen": on_p,
        "interest_memo_fen": off_i,
        "penalty_memo_fen": off_p,
        "non_accrual": dpd_now >= NON_ACCRUAL_DPD,
        "_state": full,
    }
    return row


_LOAN_SCHEMA: dict[str, Any] = {
    "loan_id": pl.Int64,
    "customer_id": pl.Int64,
    "book_id": pl.Int64,
    "status": pl.String,
    "principal_fen": pl.Int64,
    "term_months": pl.Int64,
    "method": pl.String,
    "rate_units": pl.Int64,
    "line_rate_units": pl.Int64,
    "drawn_on": pl.Date,
    "accepted_at": pl.Datetime("us", "UTC"),
    "idempotency_key": pl.String,
    "principal_outstanding_fen": pl.Int64,
    "earliest_unpaid_due": pl.Date,
    "closed_through": pl.Date,
    "accrued_through": pl.Date,
    "period_interest_units": pl.Int64,
    "penalty_whole_fen": pl.Int64,
    "penalty_rem_units": pl.Int64,
    "penalty_paid_fen": pl.Int64,
    "interest_booked_fen": pl.Int64,
    "penalty_booked_fen": pl.Int64,
    "dpd": pl.Int64,
    "perf_fen": pl.Int64,
    "over_fen": pl.Int64,
    "next_due": pl.Date,
    "over_since": pl.Date,
    "snap_principal_fen": pl.Int64,
    "interest_recv_fen": pl.Int64,
    "penalty_recv_fen": pl.Int64,
    "interest_memo_fen": pl.Int64,
    "penalty_memo_fen": pl.Int64,
    "non_accrual": pl.Boolean,
}
_INST_SCHEMA: dict[str, Any] = {
    "loan_id": pl.Int64,
    "period": pl.Int64,
    "customer_id": pl.Int64,
    "due_date": pl.Date,
    "principal_fen": pl.Int64,
    "interest_fen": pl.Int64,
    "principal_paid_fen": pl.Int64,
    "interest_paid_fen": pl.Int64,
}
_ENTRY_SCHEMA: dict[str, Any] = {
    "entry_id": pl.Int64,
    "book_id": pl.Int64,
    "customer_id": pl.Int64,
    "loan_id": pl.Int64,
    "business_date": pl.Date,
    "kind": pl.String,
    "reference": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
}
_JLINE_SCHEMA: dict[str, Any] = {
    "entry_id": pl.Int64,
    "book_id": pl.Int64,
    "customer_id": pl.Int64,
    "loan_id": pl.Int64,
    "account": pl.String,
    "amount_fen": pl.Int64,
}


def _write(conn: sa.Connection, frames: dict[str, Any]) -> None:
    bulk.insert_frame(conn, customer, frames["customers"])
    bulk.insert_frame(conn, credit_line, frames["lines"])
    bulk.insert_frame(conn, loan, frames["loans"])
    bulk.insert_frame(conn, installment, frames["installments"])
    bulk.insert_frame(conn, journal_entry, frames["entries"])
    bulk.insert_frame(conn, journal_line, frames["journal_lines"])


def _close_books(
    conn: sa.Connection,
    p: Platform,
    book: int,
    yesterday: date,
    totals: dict[str, int],
    accrual_entry: int,
    next_customer: int,
    next_loan: int,
) -> None:
    """The accrual entry of the seeded book (its per-loan records, written with the loans,
    name it by its reserved id), the clock and sequences."""
    if p.is_postgres:
        for table, column, nxt in (
            ("customer", "customer_id", next_customer),
            ("loan", "loan_id", next_loan),
            ("journal_entry", "entry_id", accrual_entry + 1),
        ):
            conn.execute(
                sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), :v)"),
                {"v": nxt},
            )
    entry = day_accrual_entry(
        totals["interest"], totals["penalty"], totals["off_interest"], totals["off_penalty"]
    )
    if entry is not None:
        conn.execute(
            journal_entry.insert(),
            {
                "entry_id": accrual_entry,
                "book_id": book,
                "customer_id": None,
                "loan_id": None,
                "business_date": yesterday,
                "kind": entry.kind.value,
                "reference": f"seed:accrual:{yesterday}",
                "created_at": p.now(),
            },
        )
        conn.execute(
            journal_line.insert(),
            [
                {
                    "entry_id": accrual_entry,
                    "book_id": book,
                    "customer_id": None,
                    "loan_id": None,
                    "account": posting.account.value,
                    "amount_fen": posting.amount_fen,
                }
                for posting in entry.postings
            ],
        )
    clock = read_clock(conn, p.now)
    if clock.last_closed_date is None:
        conn.execute(
            business_clock.update()
            .where(business_clock.c.id == 1)
            .values(last_closed_date=yesterday)
        )
    # the ledger's balances at the close of yesterday, now that the seeded entries are in it
    conn.execute(gl_day.delete().where(gl_day.c.business_date == yesterday))
