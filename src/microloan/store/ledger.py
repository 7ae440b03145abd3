"""Writing journal entries. Balanced by construction (see ``domain.books.Entry``)."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from microloan.domain.books import Entry
from microloan.store.prepared import Prepared
from microloan.store.schema import book, journal_entry, journal_line

_book_ids: dict[tuple[str, str], int] = {}


def book_id(conn: sa.Connection, code: str) -> int:
    """The id of a book by code, cached per database."""
    key = (str(conn.engine.url), code)
    if key not in _book_ids:
        found = conn.execute(sa.select(book.c.id).where(book.c.code == code)).scalar_one()
        _book_ids[key] = int(found)
    return _book_ids[key]


def post(
    conn: sa.Connection,
    entry: Entry,
    *,
    book: int,
    business_date: date,
    reference: str,
    created_at: datetime,
    customer_id: int | None = None,
    loan_id: int | None = None,
) -> int:
    if conn.dialect.name == "postgresql":
        return _post_one_statement(
            conn, entry, book, business_date, reference, created_at, customer_id, loan_id
        )
    entry_id = conn.execute(
        journal_entry.insert().returning(journal_entry.c.entry_id),
        {
            "book_id": book,
            "customer_id": customer_id,
            "loan_id": loan_id,
            "business_date": business_date,
            "kind": entry.kind.value,
            "reference": reference,
            "created_at": created_at,
        },
    ).scalar_one()
    lines: list[dict[str, Any]] = [
        {
            "entry_id": entry_id,
            "book_id": book,
            "customer_id": customer_id,
            "loan_id": loan_id,
            "account": p.account.value,
            "amount_fen": p.amount_fen,
        }
        for p in entry.postings
    ]
    conn.execute(journal_line.insert(), lines)
    return int(entry_id)


def _post_one_statement(
    conn: sa.Connection,
    entry: Entry,
    book: int,
    business_date: date,
    reference: str,
    created_at: datetime,
    customer_id: int | None,
    loan_id: int | None,
) -> int:
    """PostgreSQL: the entry and its lines in one statement (a data-modifying CTE)."""
    params: dict[str, Any] = {
        "book": book,
        "customer": customer_id,
        "loan": loan_id,
        "bdate": business_date,
        "kind": entry.kind.value,
        "ref": reference,
        "at": created_at,
    }
    for n, posting in enumerate(entry.postings):
        params[f"a{n}"] = posting.account.value
        params[f"v{n}"] = posting.amount_fen
    return int(_entry_cte(len(entry.postings)).scalar(conn, params) or 0)


@functools.cache
def _entry_cte(postings: int) -> Prepared:
    rows = [f"(CAST(:a{n} AS VARCHAR), CAST(:v{n} AS BIGINT))" for n in range(postings)]
    sql = (
        "WITH e AS (INSERT INTO journal_entry (book_id, customer_id, loan_id, business_date, "
        "kind, reference, created_at) VALUES (:book, CAST(:customer AS BIGINT), "
        "CAST(:loan AS BIGINT), :bdate, :kind, :ref, :at) RETURNING entry_id) "
        "INSERT INTO journal_line (entry_id, book_id, customer_id, loan_id, account, amount_fen) "
        "SELECT e.entry_id, :book, CAST(:customer AS BIGINT), CAST(:loan AS BIGINT), v.account, "
        f"v.amount FROM e, (VALUES {', '.join(rows)}) AS v(account, amount) RETURNING entry_id"
    )
    return Prepared(sa.text(sql))
