"""The ``payment`` table: statements and reads for payments through the rail (never commits)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from microloan.domain.payments import (
    PaymentEvent,
    PaymentKind,
    PaymentStatus,
    sources,
    split_failure,
    target,
)
from microloan.store.prepared import Prepared
from microloan.store.schema import bank_card, payment

MAX_PAYMENT_KEY = 128  # the column's width


def payment_key(prefix: str, key: str) -> str:
    """``prefix:key``; a key too long for the column is replaced by its hash (still stable)."""
    whole = f"{prefix}:{key}"
    if len(whole) <= MAX_PAYMENT_KEY:
        return whole
    return f"{prefix}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def disbursement_key(draw_key: str) -> str:
    return payment_key(PaymentKind.DISBURSE.value, draw_key)


def account_ref(customer_id: int) -> str:
    """Where money goes for a customer without a bound card: their account at the rail."""
    return f"account:{customer_id}"


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment row, with the customer's default bound card (encrypted) if there is one."""

    payment_id: int
    key: str
    kind: PaymentKind
    customer_id: int
    loan_id: int | None
    amount_fen: int
    business_date: date
    status: PaymentStatus
    attempts: int
    card_enc: str | None

    def __post_init__(self) -> None:
        assert self.amount_fen > 0 and self.attempts >= 0


_CARD = (
    sa.select(bank_card.c.card_enc)
    .where(
        bank_card.c.customer_id == payment.c.customer_id,
        bank_card.c.status == "bound",
        bank_card.c.is_default.is_(True),
    )
    .order_by(bank_card.c.card_id)
    .limit(1)
    .scalar_subquery()
    .label("card_enc")
)
_COLUMNS = (
    payment.c.payment_id,
    payment.c.key,
    payment.c.kind,
    payment.c.customer_id,
    payment.c.loan_id,
    payment.c.amount_fen,
    payment.c.business_date,
    payment.c.status,
    payment.c.attempts,
    _CARD,
)


def select_payments() -> sa.Select[Any]:
    return sa.select(*_COLUMNS)


def as_payment(row: Any) -> Payment:
    return Payment(
        int(row.payment_id),
        row.key,
        PaymentKind(row.kind),
        int(row.customer_id),
        None if row.loan_id is None else int(row.loan_id),
        int(row.amount_fen),
        row.business_date,
        PaymentStatus(row.status),
        int(row.attempts),
        row.card_enc,
    )


def read(conn: sa.Connection, key: str) -> Payment | None:
    row = conn.execute(select_payments().where(payment.c.key == key)).one_or_none()
    return None if row is None else as_payment(row)


def insert(
    conn: sa.Connection,
    *,
    key: str,
    kind: PaymentKind,
    customer_id: int,
    loan_id: int | None,
    amount_fen: int,
    business_date: date,
    at: datetime,
    sent: bool = False,
) -> bool:
    """Queue a payment (``sent``: its payer takes it at once, in the same transaction); False
    when one with this key exists already (nothing written)."""
    assert amount_fen > 0
    inserted = _insert_statement(conn.dialect.name).first(
        conn,
        {
            "key": key,
            "kind": kind.value,
            "customer_id": customer_id,
            "loan_id": loan_id,
            "amount_fen": amount_fen,
            "business_date": business_date,
            "status": (PaymentStatus.SENT if sent else PaymentStatus.QUEUED).value,
            "attempts": 1 if sent else 0,
            "requested_at": at,
        },
    )
    return inserted is not None


@functools.cache
def _insert_statement(dialect: str) -> Prepared:
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return Prepared(
        ins(payment).on_conflict_do_nothing(index_elements=["key"]).returning(payment.c.payment_id)
    )


def move(
    conn: sa.Connection,
    key: str,
    event: PaymentEvent,
    *,
    status: PaymentStatus | None = None,
    attempts: int | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Compare-and-set: apply ``event`` to the payment if it is in a state the event may leave
    (only ``status``, if given; and, given ``attempts``, still at that attempt). False when
    another payer moved it first."""
    leaving = sources(event)
    if status is not None:
        assert status in leaving, f"{event} never leaves {status}"
        leaving = (status,)
    where = [payment.c.key == key, payment.c.status.in_([s.value for s in leaving])]
    if attempts is not None:
        where.append(payment.c.attempts == attempts)
    changes: dict[str, Any] = {**(values or {}), "status": target(event).value}
    if event is PaymentEvent.SEND:
        changes["attempts"] = payment.c.attempts + 1
    done = conn.execute(payment.update().where(*where).values(**changes))
    assert done.rowcount in (0, 1), "payment keys are unique"
    return done.rowcount == 1


# a disbursement's columns as read with its loan (disbursement_of_row)
DISBURSEMENT_COLUMNS = (
    payment.c.status.label("payment_status"),
    payment.c.attempts.label("payment_attempts"),
    payment.c.failure.label("payment_failure"),
    payment.c.settled_at.label("payment_settled_at"),
)


def disbursement_of(loan: sa.Table) -> sa.ColumnElement[bool]:
    """The join condition of a loan and its disbursement (a loan has one at most)."""
    return sa.and_(
        payment.c.loan_id == loan.c.loan_id, payment.c.kind == PaymentKind.DISBURSE.value
    )


_DISBURSEMENT_OF = Prepared(
    sa.select(*DISBURSEMENT_COLUMNS).where(
        payment.c.loan_id == sa.bindparam("lid"), payment.c.kind == PaymentKind.DISBURSE.value
    )
)


def disbursement_view(conn: sa.Connection, loan_id: int) -> dict[str, Any] | None:
    """How a loan's disbursement stands, for the borrower (None for a loan booked before the
    rail: it was disbursed at once)."""
    return disbursement_of_row(_DISBURSEMENT_OF.one_or_none(conn, {"lid": loan_id}))


def disbursement_of_row(row: Any) -> dict[str, Any] | None:
    """``disbursement_view`` from a row with ``DISBURSEMENT_COLUMNS`` (None: no payment)."""
    if row is None or row.payment_status is None:
        return None
    code, words = split_failure(row.payment_failure)
    return {
        "status": row.payment_status,
        "attempts": row.payment_attempts,
        "failure_code": code,
        "failure": words,
        "settled_at": row.payment_settled_at.isoformat() if row.payment_settled_at else None,
    }
