"""One payment through the rail, step by step (servicing §2).

1. *take* it: a compare-and-set moves it to ``sent`` (attempts + 1) and commits;
2. *send* it: the rail is called outside any transaction, with the payment's key;
3. *record* the answer in one transaction: the payment's final state with what it means for
   the books (a disbursement opens the loan and posts Dr 1301 / Cr 1002 dated the day the draw
   was accepted, or fails the loan and releases the line room; a debit books the repayment).

A call without an answer leaves the payment ``unknown``; it is resolved by asking the rail
(``lookup``), and only when the rail never got it, by sending again with the same key. Every
step is a compare-and-set on the payment's state, so two payers (a worker process and a
command, two workers, the end of day) never record one payment twice, and the rail's
idempotency keys make sure they never pay it twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.domain.books import disbursement_entry
from microloan.domain.line import LoanEvent, LoanStatus, loan_transition
from microloan.domain.payments import (
    PaymentEvent,
    PaymentKind,
    PaymentStatus,
    failure_text,
    target,
)
from microloan.errors import MicroloanError
from microloan.providers.ports import ProviderError
from microloan.providers.rail import PaymentRailPort, Transfer, TransferKind, TransferStatus
from microloan.service.clock import DATE_LOCK
from microloan.service.platform import Platform
from microloan.store import payments as store
from microloan.store.ledger import post
from microloan.store.payments import Payment
from microloan.store.schema import credit_line, loan, payment

BATCH = 500  # payments read at a time when resolving or cancelling


def take(p: Platform, pay: Payment) -> Payment | None:
    """Move a payment from the state it was read in (at its attempts) to ``sent`` and commit;
    None when another payer moved it first."""

    def work(conn: sa.Connection) -> bool:
        values = {"requested_at": p.now()}
        return store.move(
            conn,
            pay.key,
            PaymentEvent.SEND,
            status=pay.status,
            attempts=pay.attempts,
            values=values,
        )

    if not p.transaction(work):
        return None
    return replace(pay, status=PaymentStatus.SENT, attempts=pay.attempts + 1)


def take_queued(p: Platform, today: date, limit: int) -> list[Payment]:
    """Take up to ``limit`` payments queued for ``today`` (skipping rows another worker holds)."""

    def work(conn: sa.Connection) -> list[Payment]:
        query = (
            store.select_payments()
            .where(
                payment.c.status == PaymentStatus.QUEUED.value,
                payment.c.business_date == today,
            )
            .order_by(payment.c.payment_id)
            .limit(limit)
        )
        if p.is_postgres:
            query = query.with_for_update(skip_locked=True, of=payment)
        rows = [store.as_payment(r) for r in conn.execute(query)]
        if not rows:
            return []
        taken = set(
            conn.execute(
                payment.update()
                .where(
                    payment.c.payment_id.in_([r.payment_id for r in rows]),
                    payment.c.status == PaymentStatus.QUEUED.value,
                )
                .values(
                    status=PaymentStatus.SENT.value,
                    attempts=payment.c.attempts + 1,
                    requested_at=p.now(),
                )
                .returning(payment.c.payment_id)
            ).scalars()
        )
        return [
            replace(r, status=PaymentStatus.SENT, attempts=r.attempts + 1)
            for r in rows
            if r.payment_id in taken
        ]

    return p.transaction(work)


def destination(p: Platform, pay: Payment) -> str:
    """The customer's default bound card, or their account reference when they have none."""
    if pay.card_enc is None:
        return store.account_ref(pay.customer_id)
    return p.vault.decrypt(pay.card_enc, column="bank_card.number")


def send(p: Platform, rail: PaymentRailPort, pay: Payment) -> Transfer | None:
    """Call the rail (no transaction is open); None when no answer came back."""
    assert pay.status is PaymentStatus.SENT
    to = destination(p, pay)
    try:
        if pay.kind is PaymentKind.DISBURSE:
            return rail.disburse(pay.key, to, pay.amount_fen)
        return rail.debit(pay.key, to, pay.amount_fen)
    except ProviderError:  # a timeout or an outage: the money may have moved, ask the rail
        return None


def pay_through(p: Platform, rail: PaymentRailPort, pay: Payment) -> PaymentStatus:
    """Send a taken payment and record the answer; after a call without an answer, ask the rail,
    and send again with the same key only when it never got it (at most ``rail_sends`` calls)."""
    for n in range(p.settings.rail_sends):
        transfer = send(p, rail, pay)
        if transfer is None:
            _no_answer(p, pay)
            transfer = _ask(rail, pay.key)
        if transfer is not None:
            recorded = record(p, pay, transfer)
            return PaymentStatus.UNKNOWN if recorded is None else recorded
        if n == p.settings.rail_sends - 1:
            break
        again = take(p, replace(pay, status=PaymentStatus.UNKNOWN))
        if again is None:
            return status_of(p, pay.key)  # another payer has it now
        pay = again
    return PaymentStatus.UNKNOWN


def resolve(
    p: Platform, rail: PaymentRailPort, pay: Payment, *, may_send: bool
) -> PaymentStatus | None:
    """Settle a ``sent``/``unknown`` payment by asking the rail; when the rail never got it,
    send it again with the same key (if ``may_send``). None: nothing could be settled."""
    transfer = rail.lookup(pay.key)
    if transfer is not None:
        return record(p, pay, transfer)
    if not may_send:
        return None
    again = take(p, pay)
    return None if again is None else pay_through(p, rail, again)


def record(p: Platform, pay: Payment, transfer: Transfer) -> PaymentStatus | None:
    """Record the rail's answer; None when it describes another transfer than the payment
    (left as it is, for the reconciliation to list)."""
    if (transfer.key, transfer.kind.value, transfer.amount_fen) != (
        pay.key,
        pay.kind.value,
        pay.amount_fen,
    ):
        return None
    if pay.kind is PaymentKind.DISBURSE:
        return p.transaction(lambda conn: _record_disbursement(conn, p, pay, transfer))
    return _record_debit(p, pay, transfer)


def cancel(p: Platform, pay: Payment, code: str) -> bool:
    """Give a payment up (the rail does not have it): failed with ``code``; a disbursement's
    loan fails and its line room is released, in the same transaction."""

    def work(conn: sa.Connection) -> bool:
        _guard(conn, p)
        values = {"failure": failure_text(code), "settled_at": p.now()}
        if not store.move(conn, pay.key, PaymentEvent.CANCEL, values=values):
            return False
        if pay.kind is PaymentKind.DISBURSE:
            _fail_loan(conn, p, pay)
        return True

    return p.transaction(work)


def status_of(p: Platform, key: str) -> PaymentStatus:
    with p.engine.connect() as conn:
        found = conn.execute(sa.select(payment.c.status).where(payment.c.key == key)).scalar_one()
    return PaymentStatus(found)


def unsettled(
    p: Platform, *, upto: date, statuses: tuple[PaymentStatus, ...], after_id: int = 0
) -> list[Payment]:
    """The next payments (by id) dated ``upto`` or before, in one of ``statuses``."""
    with p.engine.connect() as conn:
        rows = conn.execute(
            store.select_payments()
            .where(
                payment.c.business_date <= upto,
                payment.c.status.in_([s.value for s in statuses]),
                payment.c.payment_id > after_id,
            )
            .order_by(payment.c.payment_id)
            .limit(BATCH)
        )
        return [store.as_payment(r) for r in rows]


# ---------------------------------------------------------------------------------------------


def _no_answer(p: Platform, pay: Payment) -> None:
    """The call at ``pay.attempts`` timed out: ``unknown`` (unless another payer moved it on)."""

    def work(conn: sa.Connection) -> None:
        store.move(conn, pay.key, PaymentEvent.NO_ANSWER, attempts=pay.attempts)

    p.transaction(work)


def _ask(rail: PaymentRailPort, key: str) -> Transfer | None:
    try:
        return rail.lookup(key)
    except ProviderError:
        return None


def _guard(conn: sa.Connection, p: Platform) -> None:
    """Like every money transaction of the open date, hold the date lock shared (PostgreSQL):
    the end of day never starts a date while a disbursement of that date is being recorded."""
    if p.is_postgres:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(sa.literal(DATE_LOCK))))


def _record_disbursement(
    conn: sa.Connection, p: Platform, pay: Payment, transfer: Transfer
) -> PaymentStatus:
    _guard(conn, p)
    ok = transfer.status is TransferStatus.SUCCEEDED
    event = PaymentEvent.SUCCEEDED if ok else PaymentEvent.FAILED
    values = {
        "rail_ref": transfer.rail_ref or None,
        "failure": None if ok else failure_text(transfer.reason),
        "settled_at": p.now(),
    }
    if not store.move(conn, pay.key, event, values=values):
        found = conn.execute(sa.select(payment.c.status).where(payment.c.key == pay.key))
        return PaymentStatus(found.scalar_one())  # another payer recorded it first
    if ok:
        _open_loan(conn, p, pay)
    else:
        _fail_loan(conn, p, pay)
    return target(event)


def _pending_loan(conn: sa.Connection, pay: Payment, event: LoanEvent, **values: Any) -> Any:
    """Move the payment's pending loan by ``event``; its row as it was drawn."""
    assert pay.loan_id is not None, "a disbursement belongs to a loan"
    status = loan_transition(LoanStatus.PENDING, event)
    row = conn.execute(
        loan.update()
        .where(loan.c.loan_id == pay.loan_id, loan.c.status == LoanStatus.PENDING.value)
        .values(status=status.value, **values)
        .returning(
            loan.c.loan_id,
            loan.c.customer_id,
            loan.c.book_id,
            loan.c.principal_fen,
            loan.c.drawn_on,
        )
    ).one_or_none()
    assert row is not None, "a payment in flight keeps its loan pending"
    assert (row.customer_id, row.principal_fen) == (pay.customer_id, pay.amount_fen)
    return row


def _open_loan(conn: sa.Connection, p: Platform, pay: Payment) -> None:
    row = _pending_loan(conn, pay, LoanEvent.DISBURSED)
    now = p.now()
    post(
        conn,
        disbursement_entry(pay.amount_fen),
        book=row.book_id,
        business_date=row.drawn_on,  # the date the draw was accepted on (the end of day's rule)
        reference=pay.key,
        created_at=now,
        customer_id=row.customer_id,
        loan_id=row.loan_id,
    )
    conn.execute(
        credit_line.update()
        .where(credit_line.c.customer_id == row.customer_id)
        .values(
            pending_principal_fen=credit_line.c.pending_principal_fen - pay.amount_fen,
            outstanding_principal_fen=credit_line.c.outstanding_principal_fen + pay.amount_fen,
            updated_at=now,
        )
    )


def _fail_loan(conn: sa.Connection, p: Platform, pay: Payment) -> None:
    row = _pending_loan(
        conn,
        pay,
        LoanEvent.DISBURSEMENT_FAILED,
        principal_outstanding_fen=0,
        earliest_unpaid_due=None,
    )
    conn.execute(
        credit_line.update()
        .where(credit_line.c.customer_id == row.customer_id)
        .values(
            pending_principal_fen=credit_line.c.pending_principal_fen - pay.amount_fen,
            open_loans=credit_line.c.open_loans - 1,
            updated_at=p.now(),
        )
    )


def _record_debit(p: Platform, pay: Payment, transfer: Transfer) -> PaymentStatus:
    """A debit that moved is booked as the loan's repayment first (idempotent by the payment's
    key, so a crash between the two steps is repaired by recording again); a debit the loan
    can no longer take is kept as succeeded with ``not_booked``, for the reconciliation."""
    from microloan.service.lending import repay  # lending pays through here: import when used

    assert transfer.kind is TransferKind.DEBIT and pay.loan_id is not None
    ok = transfer.status is TransferStatus.SUCCEEDED
    failure = None if ok else failure_text(transfer.reason)
    if ok:
        try:
            repay(p, pay.customer_id, pay.loan_id, pay.amount_fen, pay.key, source="autodebit")
        except MicroloanError as exc:
            failure = failure_text("not_booked", exc.code)
    event = PaymentEvent.SUCCEEDED if ok else PaymentEvent.FAILED
    values = {"rail_ref": transfer.rail_ref or None, "failure": failure, "settled_at": p.now()}
    if p.transaction(lambda conn: store.move(conn, pay.key, event, values=values)):
        return target(event)
    return status_of(p, pay.key)  # another payer recorded it first
