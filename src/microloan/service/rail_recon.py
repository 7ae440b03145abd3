"""Daily reconciliation of the rail's statement against the books (servicing §2).

For a business date d, three sides are compared key by key (a payment's key is the transfer's
idempotency key, the disbursement entry's reference and the auto-debit repayment's key):

- the rail: every transfer on its statement for d;
- our payments: the ``payment`` rows of those keys, and every row dated d that succeeded;
- our books: the disbursement entries of loans drawn on d, and the auto-debit repayments
  booked on d (each with its journal entry, in one transaction).

Every difference becomes one ``recon_issue`` row of kind ``rail`` (reference = the key,
expected = our figure, actual = the rail's): on the rail but not in our books, in our books
but not on the rail, another amount, another outcome, another date. Rerunning a date replaces
its rail issues. Nothing here moves money or changes a payment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.domain.books import Account, EntryKind
from microloan.domain.money import format_yuan
from microloan.domain.payments import PaymentStatus
from microloan.providers.rail import PaymentRailPort, Transfer, TransferStatus
from microloan.service.platform import Platform
from microloan.store.schema import (
    journal_entry,
    journal_line,
    loan,
    payment,
    recon_issue,
    repayment,
)

KIND = "rail"
IN_CLAUSE = 500  # keys per IN (…) list


@dataclass(frozen=True, slots=True)
class Ours:
    """Our payment row of a key, as the reconciliation reads it."""

    kind: str
    amount_fen: int
    status: str
    business_date: date


@dataclass(frozen=True, slots=True)
class Issue:
    reference: str
    expected_fen: int | None  # our figure
    actual_fen: int | None  # the rail's figure
    detail: str  # Chinese first, English beside it


def reconcile_rail(p: Platform, rail: PaymentRailPort, d: date) -> list[Issue]:
    """Compare the rail's statement for ``d`` with our payments and books; record every issue."""
    statement = {t.key: t for t in rail.statement(d)}
    with p.engine.connect() as conn:
        ours = _payments(conn, d, statement)
        booked = _booked(conn, d)
    issues = compare(d, statement, ours, booked)

    def work(conn: sa.Connection) -> None:
        conn.execute(
            recon_issue.delete().where(recon_issue.c.business_date == d, recon_issue.c.kind == KIND)
        )
        if issues:
            conn.execute(
                recon_issue.insert(),
                [
                    {
                        "business_date": d,
                        "kind": KIND,
                        "reference": i.reference,
                        "expected_fen": i.expected_fen,
                        "actual_fen": i.actual_fen,
                        "detail": i.detail[:300],
                    }
                    for i in issues
                ],
            )

    p.transaction(work)
    return issues


def compare(
    d: date, statement: dict[str, Transfer], ours: dict[str, Ours], booked: dict[str, int]
) -> list[Issue]:
    """Every difference between the rail, our payments and our books for ``d`` (pure)."""
    keys = set(statement) | set(booked)
    keys |= {k for k, o in ours.items() if o.business_date == d and _succeeded(o)}
    issues: list[Issue] = []
    for key in sorted(keys):
        t, o, b = statement.get(key), ours.get(key), booked.get(key)
        if t is None:
            issues += _not_on_the_rail(d, key, o, b)
        elif o is None:
            issues.append(
                Issue(
                    key,
                    b,
                    t.amount_fen,
                    f"通道有此笔而我方无付款记录 on the rail ({t.kind}, {t.status}, "
                    f"{format_yuan(t.amount_fen)}), not among our payments",
                )
            )
        else:
            issues += _both(d, key, t, o, b)
    return issues


def _not_on_the_rail(d: date, key: str, o: Ours | None, booked: int | None) -> list[Issue]:
    figure = booked if booked is not None else (o.amount_fen if o is not None else None)
    where = "我方账上有而通道当日对账单无 in our books"
    if o is not None and _succeeded(o):
        where = "我方记为成功而通道当日对账单无 succeeded in our payments"
    return [Issue(key, figure, None, f"{where}, not on the rail's statement for {d}")]


def _both(d: date, key: str, t: Transfer, o: Ours, booked: int | None) -> list[Issue]:
    out: list[Issue] = []
    if t.amount_fen != o.amount_fen:
        out.append(
            Issue(
                key,
                o.amount_fen,
                t.amount_fen,
                f"金额不符 amount differs: ours {format_yuan(o.amount_fen)}, "
                f"the rail's {format_yuan(t.amount_fen)}",
            )
        )
    rail_ok = t.status is TransferStatus.SUCCEEDED
    if rail_ok != _succeeded(o):
        out.append(
            Issue(
                key,
                o.amount_fen,
                t.amount_fen,
                f"结果不符 outcome differs: ours {o.status}, the rail's {t.status}",
            )
        )
    elif rail_ok and o.business_date != d:
        out.append(
            Issue(
                key,
                o.amount_fen,
                t.amount_fen,
                f"日期不符 date differs: ours {o.business_date}, the rail settled it on {d}",
            )
        )
    if rail_ok and booked != t.amount_fen and not out:
        ours = "nothing" if booked is None else format_yuan(booked)
        out.append(
            Issue(
                key,
                booked,
                t.amount_fen,
                f"入账不符 booked on {d}: {ours}, the rail moved {format_yuan(t.amount_fen)}",
            )
        )
    if not rail_ok and booked is not None:
        out.append(
            Issue(
                key,
                booked,
                t.amount_fen,
                "通道失败但我方已入账 booked, but the rail says it failed",
            )
        )
    return out


def _succeeded(o: Ours) -> bool:
    return o.status == PaymentStatus.SUCCEEDED.value


def _payments(conn: sa.Connection, d: date, statement: dict[str, Transfer]) -> dict[str, Ours]:
    cols = (
        payment.c.key,
        payment.c.kind,
        payment.c.amount_fen,
        payment.c.status,
        payment.c.business_date,
    )
    rows: list[Any] = list(conn.execute(sa.select(*cols).where(payment.c.business_date == d)))
    for chunk in _chunks(sorted(statement)):
        rows += conn.execute(sa.select(*cols).where(payment.c.key.in_(chunk)))
    return {r.key: Ours(r.kind, int(r.amount_fen), r.status, r.business_date) for r in rows}


def _booked(conn: sa.Connection, d: date) -> dict[str, int]:
    """What our books moved through the rail on ``d``, by key: the disbursement entries of the
    loans drawn on d (their Cr 1002) and the auto-debit repayments booked on d."""
    disbursed = conn.execute(
        sa.select(journal_entry.c.reference, sa.func.sum(journal_line.c.amount_fen))
        .select_from(
            journal_line.join(
                journal_entry, journal_entry.c.entry_id == journal_line.c.entry_id
            ).join(loan, loan.c.loan_id == journal_line.c.loan_id)
        )
        .where(
            loan.c.drawn_on == d,
            journal_entry.c.business_date == d,
            journal_entry.c.kind == EntryKind.DISBURSEMENT.value,
            journal_line.c.account == Account.SETTLEMENT.value,
        )
        .group_by(journal_entry.c.reference)
    )
    out = {str(ref): -int(total) for ref, total in disbursed}
    debited = conn.execute(
        sa.select(repayment.c.idempotency_key, sa.func.sum(repayment.c.amount_fen))
        .where(repayment.c.business_date == d, repayment.c.source == "autodebit")
        .group_by(repayment.c.idempotency_key)
    )
    for key, total in debited:  # an auto-debit repayment's key is its payment's key
        out[str(key)] = out.get(str(key), 0) + int(total)
    return out


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(keys), IN_CLAUSE):
        yield keys[i : i + IN_CLAUSE]
