"""Money through the payment rail (servicing §2): disbursing draws, the worker, the close.

- A draw is accepted at once (``lending.draw``): the loan is ``pending``, its principal holds
  line room as ``pending_principal_fen``, and a ``disburse:<draw key>`` payment is queued.
  :func:`settle_draw` pays it in process (the command line, the embedded default); otherwise
  the worker does.
- The worker (:func:`work_once`, :func:`run_worker`) takes queued payments of the open date,
  sends them outside any transaction, records each answer in one transaction, asks the rail
  about payments left without an answer, and runs the auto-debit slot whose time has come.
- :func:`before_close` is the end of day's first step for a date d: it settles every payment
  dated d or before by asking the rail (never by paying), gives up what was never sent, and
  reconciles the rail's statement for d with the books (``rail_recon``).

See docs/payments.md.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.domain.line import LoanStatus
from microloan.domain.payments import PaymentStatus
from microloan.domain.schedule import Method
from microloan.providers.ports import ProviderError
from microloan.providers.rail import PaymentRailPort, RailFaults
from microloan.providers.stored_rail import MAX_CARD_REF, StoredRail
from microloan.service import payment_steps as steps
from microloan.service.clock import read_clock
from microloan.service.platform import Platform
from microloan.service.rail_recon import reconcile_rail
from microloan.store import payments as store
from microloan.store.schema import loan, payment

WAIT_STEP_S = 0.02
MAX_PASSES = 10_000  # a worker started with --once stops after this many passes in any case


def simulated_rail(
    p: Platform,
    *,
    faults: RailFaults | None = None,
    declined_cards: frozenset[str] = frozenset(),
) -> StoredRail:
    """The simulated rail on the platform's database, with the faults of the settings (or
    ``faults``); its business date is the platform's open date."""
    s = p.settings
    return StoredRail(
        p.engine,
        today=lambda: open_date(p),
        now=p.now,
        card_ref=lambda number: _card_ref(p, number),
        holders=lambda: p.providers.holder_verification,
        faults=faults
        or RailFaults(
            latency_ms=s.rail_latency_ms,
            failure_rate=s.rail_failure_rate,
            timeout_rate=s.rail_timeout_rate,
            seed=s.rail_seed,
        ),
        declined_cards=declined_cards,
    )


def _card_ref(p: Platform, number: str) -> str:
    if number.isdigit():  # a card number: only its keyed hash reaches the rail's table
        return p.vault.blind(number, kind="rail_card")
    if len(number) <= MAX_CARD_REF:
        return number  # an account reference
    return hashlib.sha256(number.encode()).hexdigest()


def open_date(p: Platform) -> date:
    with p.engine.connect() as conn:
        return read_clock(conn, p.now).open_date


# ---------------------------------------------------------------------------------------------
# A draw paid in process


def draw_and_pay(
    p: Platform, customer_id: int, amount_fen: int, term_months: int, method: Method, key: str
) -> dict[str, Any]:
    """Accept a draw and disburse it before returning (the answer shows the loan open, or
    failed with the reason, or still pending when the rail has not answered)."""
    from microloan.service.lending import draw

    return draw(p, customer_id, amount_fen, term_months, method, key, pay_now=True)


def settle_draw(
    p: Platform, answer: dict[str, Any], draw_key: str, *, taken: bool = False
) -> dict[str, Any]:
    """Pay an accepted draw's disbursement now (``taken``: the draw itself queued it as sent),
    unless another payer has it (then wait for its answer a while); the draw's answer with
    the loan's status as it stands after."""
    key = store.disbursement_key(draw_key)
    with p.engine.connect() as conn:
        current = store.read(conn, key)
        today = read_clock(conn, p.now).open_date
    if current is None:
        return answer  # a loan booked before the rail
    mine: store.Payment | None = None
    if taken and current.status is PaymentStatus.SENT and current.attempts == 1:
        mine = current
    elif current.status is PaymentStatus.QUEUED and current.business_date == today:
        mine = steps.take(p, current)
    if mine is not None and steps.pay_through(p, p.rail, mine) is PaymentStatus.SUCCEEDED:
        return {**answer, "status": LoanStatus.OPEN.value}
    _wait_while_sent(p, key)
    return draw_view(p, answer)


def _wait_while_sent(p: Platform, key: str) -> None:
    deadline = time.monotonic() + p.settings.rail_answer_wait_s
    while steps.status_of(p, key) is PaymentStatus.SENT and time.monotonic() < deadline:
        time.sleep(WAIT_STEP_S)


def draw_view(p: Platform, answer: dict[str, Any]) -> dict[str, Any]:
    """A draw's answer with where its loan stands now: ``open``, ``pending`` (with the
    payment's state) or ``failed`` (with the reason, Chinese and English)."""
    loan_id = int(answer["loan_id"])
    with p.engine.connect() as conn:
        status = conn.execute(sa.select(loan.c.status).where(loan.c.loan_id == loan_id)).scalar()
        paid = store.disbursement_view(conn, loan_id)
    out = {**answer, "status": status}
    if paid is not None and status == LoanStatus.PENDING.value:
        out["disbursement"] = paid["status"]
    if paid is not None and status == LoanStatus.FAILED.value:
        out["failure"] = paid["failure"]
        out["failure_code"] = paid["failure_code"]
    return out


# ---------------------------------------------------------------------------------------------
# The worker


@dataclass
class PassResult:
    taken: int = 0  # queued payments sent
    resolved: int = 0  # payments without an answer, asked about
    succeeded: int = 0
    failed: int = 0
    unknown: int = 0  # still without an answer
    cancelled: int = 0  # given up: never sent before their date passed
    autodebit: dict[str, Any] | None = None

    def count(self, status: PaymentStatus | None) -> None:
        if status is PaymentStatus.SUCCEEDED:
            self.succeeded += 1
        elif status is PaymentStatus.FAILED:
            self.failed += 1
        else:
            self.unknown += 1

    @property
    def busy(self) -> bool:
        """Whether the pass moved anything on (a drained worker stops on the first idle one)."""
        return bool(self.taken or self.cancelled or self.succeeded or self.failed)

    def add(self, other: PassResult) -> None:
        for name in ("taken", "resolved", "succeeded", "failed", "cancelled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unknown = other.unknown  # what the last pass left without an answer

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taken": self.taken,
            "resolved": self.resolved,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "unknown": self.unknown,
            "cancelled": self.cancelled,
        }
        if self.autodebit is not None:
            out["autodebit"] = self.autodebit
        return out


def work_once(p: Platform, *, rail: PaymentRailPort | None = None) -> PassResult:
    """One pass: give up queued payments of a passed date, ask about payments without an
    answer (sending today's again with the same key when the rail never got them), then take
    and send up to ``worker_batch`` queued payments of the open date."""
    rail = rail or p.rail
    today = open_date(p)
    result = PassResult()
    for pay in steps.unsettled(p, upto=today - timedelta(days=1), statuses=(PaymentStatus.QUEUED,)):
        result.cancelled += steps.cancel(p, pay, "not_sent")
    for pay in _unanswered(p, today):
        try:
            status = steps.resolve(p, rail, pay, may_send=pay.business_date == today)
        except ProviderError:
            continue  # the rail cannot be asked now: the next pass asks again
        result.resolved += 1
        result.count(status)
    for pay in steps.take_queued(p, today, p.settings.worker_batch):
        result.taken += 1
        result.count(steps.pay_through(p, rail, pay))
    return result


def _unanswered(p: Platform, today: date) -> list[store.Payment]:
    """Payments left ``unknown``, or ``sent`` so long ago that their payer must have stopped."""
    cutoff = p.now() - timedelta(seconds=p.settings.rail_resend_after_s)
    with p.engine.connect() as conn:
        rows = conn.execute(
            store.select_payments()
            .where(
                payment.c.business_date <= today,
                sa.or_(
                    payment.c.status == PaymentStatus.UNKNOWN.value,
                    sa.and_(
                        payment.c.status == PaymentStatus.SENT.value,
                        payment.c.requested_at <= cutoff,
                    ),
                ),
            )
            .order_by(payment.c.payment_id)
            .limit(p.settings.worker_batch)
        )
        return [store.as_payment(r) for r in rows]


def run_worker(
    p: Platform,
    *,
    once: bool = False,
    rail: PaymentRailPort | None = None,
    on_pass: Callable[[PassResult], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> PassResult:
    """Passes until stopped (``once``: until a pass finds nothing to move on); the auto-debit
    slot whose time has come runs once per slot. Returns the passes' sum."""
    from microloan.service import autodebit

    rail = rail or p.rail
    total = PassResult()
    slots_run: set[tuple[date, int]] = set()
    passes = 0
    while True:
        passes += 1
        result = work_once(p, rail=rail)
        ran = autodebit.run_due_slot(p, rail=rail, already=slots_run)
        if ran is not None:
            result.autodebit = ran.as_dict()
            total.autodebit = result.autodebit
        total.add(result)
        if on_pass is not None:
            on_pass(result)
        if stop() or (once and (not result.busy or passes >= MAX_PASSES)):
            break
        if not result.busy:
            sleep(p.settings.worker_poll_s)
    return total


# ---------------------------------------------------------------------------------------------
# The close


@dataclass
class CloseResult:
    business_date: date
    resolved: int = 0  # payments without an answer, settled by asking the rail
    cancelled: int = 0  # given up: never sent, or never reached the rail
    issues: list[str] = field(default_factory=list)  # keys of the reconciliation's issues


def before_close(p: Platform, d: date, *, rail: PaymentRailPort | None = None) -> CloseResult:
    """The end of day's first step for ``d``; it never moves money.

    1. every payment dated ``d`` or before that is ``sent`` or ``unknown`` is settled by asking
       the rail; one the rail never got (or holds differently) is given up — a disbursement
       fails and releases its line room — so no loan of ``d`` is left pending;
    2. every payment dated ``d`` or before still queued is given up (``not_sent``);
    3. the rail's statement for ``d`` is reconciled with our payments and books.
    A rail that cannot be asked stops the close (rerun it later), rather than guess.
    """
    rail = rail or p.rail
    result = CloseResult(d)
    in_flight = (PaymentStatus.SENT, PaymentStatus.UNKNOWN)
    after = 0
    while batch := steps.unsettled(p, upto=d, statuses=in_flight, after_id=after):
        for pay in batch:
            after = pay.payment_id
            transfer = rail.lookup(pay.key)
            if transfer is not None and steps.record(p, pay, transfer) is not None:
                result.resolved += 1
                continue
            code = "not_reached" if transfer is None else "mismatch"
            result.cancelled += steps.cancel(p, pay, code)
    after = 0
    while batch := steps.unsettled(p, upto=d, statuses=(PaymentStatus.QUEUED,), after_id=after):
        for pay in batch:
            after = pay.payment_id
            result.cancelled += steps.cancel(p, pay, "not_sent")
    result.issues = [i.reference for i in reconcile_rail(p, rail, d)]
    return result
