"""Helpers for integration tests: the clock, customers, draws, repayments and the books."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.domain.money import format_yuan, parse_yuan
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method
from microloan.errors import MicroloanError
from microloan.service import lending
from microloan.service.clock import read_clock, set_clock
from microloan.service.ledger_check import check_ledger
from microloan.service.platform import Platform
from microloan.store.schema import (
    accrual,
    book,
    business_clock,
    credit_line,
    customer,
    eod_run,
    idempotency,
    installment,
    journal_entry,
    journal_line,
    loan,
    metadata,
    repayment,
)

MakePlatform = Callable[..., Platform]  # a fresh, migrated database per call

EI = Method.EQUAL_INSTALLMENT
EP = Method.EQUAL_PRINCIPAL
RATE = "0.0005"
_keys = itertools.count(1)


def fen(yuan: str) -> int:
    return parse_yuan(yuan)


def yuan(fen_: int) -> str:
    return format_yuan(fen_)


def new_key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


def set_date(p: Platform, d: date) -> None:
    p.transaction(lambda conn: set_clock(conn, d, p.now))


def open_date(p: Platform) -> date:
    with p.engine.connect() as conn:
        return read_clock(conn, p.now).open_date


def last_closed(p: Platform) -> date | None:
    with p.engine.connect() as conn:
        return read_clock(conn, p.now).last_closed_date


def new_customer(p: Platform, *, limit: str = "20000", rate: str = RATE, name: str = "张三") -> int:
    cid = lending.create_customer(p, name)
    lending.grant_line(p, cid, fen(limit), DailyRate.parse(rate))
    return cid


def draw(
    p: Platform,
    cid: int,
    amount: str = "10000",
    term: int = 12,
    method: Method = EI,
    key: str | None = None,
) -> dict[str, Any]:
    """A draw disbursed in process through the platform's rail (the loan is open after it,
    or failed when the rail declines)."""
    return lending.draw(p, cid, fen(amount), term, method, key or new_key("draw"), pay_now=True)


def repay(
    p: Platform, cid: int, amount: str, loan_id: int | None = None, key: str | None = None
) -> dict[str, Any]:
    return lending.repay(p, cid, loan_id, fen(amount), key or new_key("repay"))


def line(p: Platform, cid: int) -> dict[str, Any]:
    with p.engine.connect() as conn:
        return lending.line_summary(conn, cid)


def payoff(p: Platform, loan_id: int) -> str:
    return str(lending.payoff(p, loan_id)["payoff"])


def refusal(call: Any, *args: Any, **kwargs: Any) -> MicroloanError:
    """The error ``call`` raises; fails the test when it succeeds."""
    try:
        call(*args, **kwargs)
    except MicroloanError as exc:
        return exc
    raise AssertionError(f"{getattr(call, '__name__', call)} was expected to be refused")


def assert_ledger_ok(p: Platform) -> dict[str, Any]:
    report = check_ledger(p)
    assert report["ok"], report["problems"]
    return report


def sql(p: Platform, statement: str, **params: Any) -> None:
    with p.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def scalar(p: Platform, statement: str, **params: Any) -> Any:
    with p.engine.connect() as conn:
        return conn.execute(sa.text(statement), params).scalar()


def row_counts(p: Platform) -> dict[str, int]:
    with p.engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def account_balances(p: Platform) -> dict[str, int]:
    with p.engine.connect() as conn:
        rows = conn.execute(
            sa.select(journal_line.c.account, sa.func.sum(journal_line.c.amount_fen)).group_by(
                journal_line.c.account
            )
        ).all()
    return {account: int(total) for account, total in rows}


def accruals_by_loan_date(p: Platform) -> dict[tuple[int, date], tuple[int, int]]:
    with p.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                accrual.c.loan_id,
                accrual.c.business_date,
                accrual.c.interest_fen,
                accrual.c.penalty_fen,
            )
        ).all()
    return {(r.loan_id, r.business_date): (r.interest_fen, r.penalty_fen) for r in rows}


def books(p: Platform) -> dict[str, Any]:
    """Everything the books and loans hold, in a form two runs of one scenario can compare.

    Row ids that depend on the order work was done in (journal entry ids, hence the accrual
    records' entry ids) are left out; journal entries are compared as a multiset of their
    content with their lines. End-of-day run records are bookkeeping of the job, not books.
    """

    def rows(conn: sa.Connection, table: sa.Table, *, drop: tuple[str, ...] = ()) -> list[Any]:
        cols = [c for c in table.c if c.name not in drop]
        order = list(table.primary_key.columns)
        return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*order))]

    with p.engine.connect() as conn:
        lines: dict[int, list[tuple[Any, ...]]] = {}
        for r in conn.execute(sa.select(journal_line)):
            lines.setdefault(r.entry_id, []).append(
                (r.book_id, r.customer_id, r.loan_id, r.account, r.amount_fen)
            )
        entries = Counter(
            (
                e.book_id,
                e.customer_id,
                e.loan_id,
                e.business_date,
                e.kind,
                e.reference,
                e.created_at,
                tuple(sorted(lines.get(e.entry_id, []))),
            )
            for e in conn.execute(sa.select(journal_entry))
        )
        return {
            "business_clock": rows(conn, business_clock),
            "book": rows(conn, book),
            "customer": rows(conn, customer),
            "credit_line": rows(conn, credit_line),
            "loan": rows(conn, loan),
            "installment": rows(conn, installment),
            "repayment": rows(conn, repayment),
            "idempotency_key": rows(conn, idempotency),
            "accrual": rows(conn, accrual, drop=("entry_id",)),
            "journal": entries,
            "closed_dates": sorted(
                r.business_date
                for r in conn.execute(
                    sa.select(eod_run.c.business_date).where(eod_run.c.status == "done")
                )
            ),
        }
