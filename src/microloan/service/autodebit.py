"""Auto-debit for the open date (lending rules §5): everything overdue plus today's installment,
debited from the borrower's bound card through the payment rail.

- It runs in slots: the times of the day in ``settings.autodebit_times`` (Asia/Shanghai). The
  worker runs the slot whose time has come, once; ``microloan autodebit`` runs one by hand.
- Each loan with something due gets a debit payment ``autodebit:<loan>:<date>:<slot>:<n>``;
  a failed debit is retried with n + 1, up to ``autodebit_retries`` more times in the slot.
  A debit without an answer is settled by asking the rail, and no new attempt starts while one
  is unsettled: a loan is never debited twice for one due amount.
- A debit that moved is booked through ``lending.repay(..., source="autodebit")`` with the
  payment's key as its idempotency key. A failed debit is not an error of the loan.
- Rerunning a slot is safe: existing payments are read back, never sent again under a new key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.line import LoanStatus
from microloan.domain.money import format_yuan
from microloan.domain.payments import FINAL, PaymentKind, PaymentStatus
from microloan.errors import InvalidInput
from microloan.providers.ports import ProviderError
from microloan.providers.rail import PaymentRailPort
from microloan.service import payment_steps as steps
from microloan.service.clock import SHANGHAI, read_clock
from microloan.service.platform import Platform
from microloan.store import loans as repo
from microloan.store import payments as store
from microloan.store.payments import Payment
from microloan.store.schema import loan, payment

PREFIX = "autodebit"


@dataclass
class AutodebitResult:
    business_date: str
    slot: int = 0
    loans_due: int = 0
    debited: int = 0
    failed: int = 0
    unknown: int = 0  # debits the rail has not answered yet (settled later by asking it)
    amount_fen: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_date": self.business_date,
            "slot": self.slot,
            "loans_due": self.loans_due,
            "debited": self.debited,
            "failed": self.failed,
            "unknown": self.unknown,
            "amount": format_yuan(self.amount_fen),
        }


def debit_key(loan_id: int, on: date, slot: int, attempt: int) -> str:
    return f"{PREFIX}:{loan_id}:{on.isoformat()}:{slot}:{attempt}"


def slot_times(texts: tuple[str, ...]) -> list[time]:
    """The configured times, checked: ``HH:MM``, in order, at least one."""
    try:
        times = [time.fromisoformat(t) for t in texts]
    except ValueError:
        raise InvalidInput("times of day as HH:MM", field="autodebit_times") from None
    if not times or times != sorted(set(times)):
        raise InvalidInput("one or more times of day, in order", field="autodebit_times")
    return times


def slot_come(times: list[time], open_date: date, now: datetime) -> int | None:
    """The latest slot of ``open_date`` whose time has come (Asia/Shanghai); None before the
    first. An open date behind the wall clock has had every slot; one ahead of it, none."""
    local = now.astimezone(SHANGHAI)
    if open_date < local.date():
        return len(times) - 1
    if open_date > local.date():
        return None
    come = [i for i, t in enumerate(times) if t <= local.time()]
    return come[-1] if come else None


def run_due_slot(
    p: Platform, *, rail: PaymentRailPort | None = None, already: set[tuple[date, int]]
) -> AutodebitResult | None:
    """Run the slot whose time has come, unless it is in ``already`` (the worker's memory)."""
    with p.engine.connect() as conn:
        today = read_clock(conn, p.now).open_date
    slot = slot_come(slot_times(p.settings.autodebit_times), today, p.now())
    if slot is None or (today, slot) in already:
        return None
    already.add((today, slot))
    return run_autodebit(p, rail, slot=slot)


def run_autodebit(
    p: Platform, rail: PaymentRailPort | None = None, *, slot: int | None = None
) -> AutodebitResult:
    """Debit every open loan with something due on the open date (one slot; by default the
    latest whose time has come, or the first)."""
    rail = rail or p.rail
    times = slot_times(p.settings.autodebit_times)
    with p.engine.connect() as conn:
        today = read_clock(conn, p.now).open_date
        rows = list(
            conn.execute(
                sa.select(*repo.LOAN_COLUMNS)
                .where(loan.c.status == LoanStatus.OPEN.value, loan.c.earliest_unpaid_due <= today)
                .order_by(loan.c.loan_id)
            )
        )
        states = repo.live_states(conn, rows)
        if slot is None:
            come = slot_come(times, today, p.now())
            slot = 0 if come is None else come
        if not 0 <= slot < len(times):
            raise InvalidInput(f"a slot from 0 to {len(times) - 1}", field="slot")
        tried = _tried(conn, today, slot)
    result = AutodebitResult(today.isoformat(), slot)
    for r in rows:
        due = L.due_today_fen(states[r.loan_id], today)
        if due <= 0:
            continue
        result.loans_due += 1
        status, amount = _debit_loan(p, rail, r, today, slot, due, tried.get(r.loan_id, {}))
        if status is PaymentStatus.SUCCEEDED:
            result.debited += 1
            result.amount_fen += amount
        elif status is PaymentStatus.FAILED:
            result.failed += 1
        else:
            result.unknown += 1
    return result


def _tried(conn: sa.Connection, on: date, slot: int) -> dict[int, dict[int, Payment]]:
    """The slot's debits so far, by loan and attempt."""
    out: dict[int, dict[int, Payment]] = {}
    rows = conn.execute(
        store.select_payments().where(
            payment.c.kind == PaymentKind.DEBIT.value,
            payment.c.business_date == on,
            payment.c.key.like(f"{PREFIX}:%:{on.isoformat()}:{slot}:%"),
        )
    )
    for row in rows:
        pay = store.as_payment(row)
        _, loan_id, _, _, attempt = pay.key.split(":")
        out.setdefault(int(loan_id), {})[int(attempt)] = pay
    return out


def _debit_loan(
    p: Platform,
    rail: PaymentRailPort,
    row: Any,
    on: date,
    slot: int,
    due_fen: int,
    tried: dict[int, Payment],
) -> tuple[PaymentStatus, int]:
    """Attempts until one succeeds, all fail, or one is left without an answer."""
    for attempt in range(1 + p.settings.autodebit_retries):
        pay = tried.get(attempt)
        if pay is None:
            key = debit_key(row.loan_id, on, slot, attempt)
            status, amount = _new_debit(p, rail, row, key, due_fen, on)
        elif pay.status in FINAL:
            status, amount = pay.status, pay.amount_fen
        else:
            status, amount = _settle(p, rail, pay), pay.amount_fen
        if status is not PaymentStatus.FAILED:
            return status, amount  # succeeded, or unsettled: never a new attempt meanwhile
    return PaymentStatus.FAILED, 0


def _new_debit(
    p: Platform, rail: PaymentRailPort, row: Any, key: str, amount_fen: int, on: date
) -> tuple[PaymentStatus, int]:
    def queue(conn: sa.Connection) -> bool:
        return store.insert(
            conn,
            key=key,
            kind=PaymentKind.DEBIT,
            customer_id=row.customer_id,
            loan_id=row.loan_id,
            amount_fen=amount_fen,
            business_date=on,
            at=p.now(),
        )

    p.transaction(queue)  # a parallel run that queued it first: taking it below fails
    with p.engine.connect() as conn:
        queued = store.read(conn, key)
    assert queued is not None
    taken = steps.take(p, queued) if queued.status is PaymentStatus.QUEUED else None
    if taken is None:  # another run has it: its outcome is its own to record
        status = steps.status_of(p, key)
        return (status if status in FINAL else PaymentStatus.UNKNOWN), queued.amount_fen
    return steps.pay_through(p, rail, taken), taken.amount_fen


def _settle(p: Platform, rail: PaymentRailPort, pay: Payment) -> PaymentStatus:
    if pay.status is PaymentStatus.QUEUED:
        taken = steps.take(p, pay)
        return PaymentStatus.UNKNOWN if taken is None else steps.pay_through(p, rail, taken)
    try:
        status = steps.resolve(p, rail, pay, may_send=True)
    except ProviderError:
        return PaymentStatus.UNKNOWN
    return PaymentStatus.UNKNOWN if status is None else status
