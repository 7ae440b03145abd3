"""Customers, credit lines, draws and repayments (lending rules §2, §3, §5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.books import (
    PLATFORM_BOOK,
    off_balance_split,
    repayment_entry,
)
from microloan.domain.line import (
    LineStatus,
    LineView,
    LoanEvent,
    LoanStatus,
    OpenLoan,
    check_draw,
    check_limit,
    loan_transition,
    split_across_loans,
)
from microloan.domain.money import format_yuan
from microloan.domain.payments import PaymentKind
from microloan.domain.rates import DailyRate, format_percent_bp100
from microloan.domain.schedule import (
    Method,
    apr_bp100,
    build_schedule,
    capped_schedule,
    interest_fen,
)
from microloan.errors import InvalidInput, NotFound, RepaymentRefused
from microloan.service.clock import clock_columns, clock_view, read_clock
from microloan.service.platform import (
    Platform,
    answer_key,
    check_key,
    claim_key,
    request_hash,
)
from microloan.store import loans as repo
from microloan.store import payments as payment_store
from microloan.store.ledger import book_id, post
from microloan.store.prepared import Prepared
from microloan.store.schema import (
    business_clock,
    credit_line,
    customer,
    installment,
    loan,
    payment,
    repayment,
)

MAX_LISTED_LOANS = 500  # a customer's loans listed at most, newest first


def create_customer(p: Platform, name: str) -> int:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("a name of 1–100 characters is required", field="name")

    def work(conn: sa.Connection) -> int:
        return int(
            conn.execute(
                customer.insert().returning(customer.c.customer_id),
                {"name": name, "created_at": p.now()},
            ).scalar_one()
        )

    return p.transaction(work)


def grant_line(p: Platform, customer_id: int, limit_fen: int, rate: DailyRate) -> dict[str, Any]:
    """Grant or change a customer's line (a credit decision's outcome)."""
    s = p.settings
    check_limit(limit_fen, min_fen=s.min_limit_fen, max_fen=s.max_limit_fen)
    rate.check_band()

    def work(conn: sa.Connection) -> dict[str, Any]:
        _require_customer(conn, customer_id)
        values = {"limit_fen": limit_fen, "rate_units": rate.units, "updated_at": p.now()}
        updated = conn.execute(
            credit_line.update().where(credit_line.c.customer_id == customer_id).values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(
                credit_line.insert(),
                {
                    "customer_id": customer_id,
                    "status": LineStatus.ACTIVE.value,
                    "outstanding_principal_fen": 0,
                    "pending_principal_fen": 0,
                    "open_loans": 0,
                    "overdue_blocked": False,
                    **values,
                },
            )
        return line_summary(conn, customer_id)

    return p.transaction(work)


_LINE = Prepared(sa.select(credit_line).where(credit_line.c.customer_id == sa.bindparam("cid")))


def line_summary(conn: sa.Connection, customer_id: int) -> dict[str, Any]:
    row = _LINE.one_or_none(conn, {"cid": customer_id})
    if row is None:
        raise NotFound(
            f"customer {customer_id} has no credit line", code="line.not_found", field="customer"
        )
    view = _line_view(row)
    rate = DailyRate(row.rate_units)
    return {
        "customer_id": customer_id,
        "status": row.status,
        "limit": format_yuan(row.limit_fen),
        "available": format_yuan(view.available_fen),
        "outstanding_principal": format_yuan(row.outstanding_principal_fen),
        "open_loans": row.open_loans,
        "daily_rate": str(rate),
        "overdue_blocked": bool(row.overdue_blocked),
    }


_RATE_AND_CLOCK = Prepared(
    sa.select(credit_line.c.rate_units, *clock_columns()).where(
        credit_line.c.customer_id == sa.bindparam("cid")
    )
)


def line_rate_and_today(
    conn: sa.Connection, p: Platform, customer_id: int
) -> tuple[DailyRate, date]:
    """The line's daily rate and the open business date, in one statement (a quote's)."""
    row = _RATE_AND_CLOCK.one_or_none(conn, {"cid": customer_id})
    if row is None:
        raise NotFound(
            f"customer {customer_id} has no credit line", code="line.not_found", field="customer"
        )
    if row.clock_mode is None:
        read_clock(conn, p.now)  # raises "not initialised"
    return DailyRate(row.rate_units), clock_view(
        row.clock_mode, row.clock_open, row.clock_closed, p.now
    ).open_date


def _line_view(row: Any) -> LineView:
    return LineView(
        LineStatus(row.status),
        row.limit_fen,
        row.outstanding_principal_fen,
        row.pending_principal_fen,
        row.open_loans,
    )


def _require_customer(conn: sa.Connection, customer_id: int) -> None:
    found = conn.execute(
        sa.select(customer.c.customer_id).where(customer.c.customer_id == customer_id)
    ).first()
    if found is None:
        raise NotFound(
            f"customer {customer_id} does not exist", code="customer.not_found", field="customer"
        )


# ---------------------------------------------------------------------------------------------
# Draw


# Hot statements are built once; SQLAlchemy then reuses their compiled form.
_OPEN_DATE = sa.select(business_clock.c.open_date).where(business_clock.c.id == 1).scalar_subquery()


def _draw_line(guard: bool) -> sa.Select[Any]:
    return (
        sa.select(
            credit_line,
            *clock_columns(guard=guard),
            sa.exists()
            .where(
                loan.c.customer_id == sa.bindparam("cid"),
                loan.c.status == LoanStatus.OPEN.value,
                loan.c.earliest_unpaid_due < _OPEN_DATE,
            )
            .label("overdue"),
        )
        .where(credit_line.c.customer_id == sa.bindparam("cid"))
        .with_for_update(of=credit_line)
    )


_DRAW_LINE = {False: Prepared(_draw_line(False)), True: Prepared(_draw_line(True))}
_OVERDUE_ON = Prepared(  # whether the customer has a loan overdue on a date
    sa.select(
        sa.exists().where(
            loan.c.customer_id == sa.bindparam("cid"),
            loan.c.status == LoanStatus.OPEN.value,
            loan.c.earliest_unpaid_due < sa.bindparam("today", type_=sa.Date),
        )
    )
)
# the room a draw holds until it is disbursed (then outstanding, or released)
_LINE_DRAWN = Prepared(
    credit_line.update()
    .where(credit_line.c.customer_id == sa.bindparam("cid"))
    .values(
        pending_principal_fen=credit_line.c.pending_principal_fen
        + sa.bindparam("amount", type_=sa.BigInteger),
        open_loans=credit_line.c.open_loans + 1,
        updated_at=sa.bindparam("at"),
    )
)
_INSERT_LOAN = Prepared(loan.insert().returning(loan.c.loan_id))
_CLOCK = {
    False: Prepared(sa.select(*clock_columns())),
    True: Prepared(sa.select(*clock_columns(guard=True))),
}
_LOANS_OF = sa.select(*repo.LOAN_COLUMNS).where(loan.c.customer_id == sa.bindparam("cid"))
_LOCK_LOAN = Prepared(_LOANS_OF.where(loan.c.loan_id == sa.bindparam("lid")).with_for_update())
_LOCK_OPEN_LOANS = Prepared(
    _LOANS_OF.where(loan.c.status == LoanStatus.OPEN.value)
    .order_by(loan.c.loan_id)
    .with_for_update()
)
_INSERT_REPAYMENT = Prepared(repayment.insert())
_LOAN_REPAID = Prepared(
    loan.update()
    .where(loan.c.loan_id == sa.bindparam("lid"))
    .values(
        principal_outstanding_fen=sa.bindparam("principal_outstanding_fen"),
        earliest_unpaid_due=sa.bindparam("earliest_unpaid_due", type_=sa.Date),
        status=sa.bindparam("status"),
        closed_on=sa.bindparam("closed_on", type_=sa.Date),
    )
)
_LINE_REPAID = Prepared(
    credit_line.update()
    .where(credit_line.c.customer_id == sa.bindparam("cid"))
    .values(
        outstanding_principal_fen=credit_line.c.outstanding_principal_fen
        - sa.bindparam("principal", type_=sa.BigInteger),
        open_loans=credit_line.c.open_loans - sa.bindparam("closed", type_=sa.Integer),
        overdue_blocked=sa.exists().where(
            loan.c.customer_id == sa.bindparam("cid"),
            loan.c.status == LoanStatus.OPEN.value,
            loan.c.earliest_unpaid_due < sa.bindparam("today", type_=sa.Date),
        ),
        updated_at=sa.bindparam("at"),
    )
)
_INSERT_INSTALLMENTS = Prepared(installment.insert())


def draw(
    p: Platform,
    customer_id: int,
    amount_fen: int,
    term_months: int,
    method: Method,
    key: str,
    *,
    pay_now: bool = True,
    first: Callable[[sa.Connection], None] | None = None,
) -> dict[str, Any]:
    """Accept a draw in one transaction: the loan ``pending``, its principal holding line room,
    its disbursement queued (``disburse:<key>``); nothing is booked until the rail pays.

    ``pay_now`` pays it in process before returning (``payments.settle_draw``: the answer
    shows the loan open, or failed with the reason); otherwise the worker pays it. ``first``,
    a check of the caller's (the borrower's consents), runs in the same transaction once the
    key is this request's; a replay answers as before without it."""
    key = check_key(key)
    digest = request_hash("draw", customer_id, amount_fen, term_months, method.value)
    accepted: list[bool] = []  # this request accepted it (a replay did not)

    def work(conn: sa.Connection) -> dict[str, Any]:
        accepted.clear()
        prior = claim_key(conn, key, customer_id, "draw", digest, p.now())
        if prior is not None:
            return dict(prior)
        if first is not None:
            first(conn)
        # one round trip: the line (locked), the clock and the overdue block
        line = _DRAW_LINE[p.is_postgres].one_or_none(conn, {"cid": customer_id})
        if line is None:
            _require_customer(conn, customer_id)
            raise NotFound(
                f"customer {customer_id} has no credit line",
                code="line.not_found",
                field="customer",
            )
        if line.clock_mode is None:
            read_clock(conn, p.now)  # raises "not initialised"
        clock = clock_view(line.clock_mode, line.clock_open, line.clock_closed, p.now)
        today = clock.open_date
        overdue = line.overdue
        if clock.mode != "manual":  # the open date is computed, not stored: ask again
            overdue = _OVERDUE_ON.scalar_one(conn, {"cid": customer_id, "today": today})
        check_draw(
            _line_view(line), amount_fen, term_months, overdue=bool(overdue), policy=p.policy
        )
        line_rate = DailyRate(line.rate_units)
        schedule = capped_schedule(amount_fen, term_months, line_rate, method, today)
        state = L.open_loan(schedule)
        now = p.now()
        loan_id = int(
            _INSERT_LOAN.scalar_one(
                conn,
                {
                    "customer_id": customer_id,
                    "book_id": book_id(conn, PLATFORM_BOOK),
                    "status": LoanStatus.PENDING.value,
                    "principal_fen": amount_fen,
                    "term_months": term_months,
                    "method": method.value,
                    "rate_units": schedule.rate.units,
                    "line_rate_units": line.rate_units,
                    "drawn_on": today,
                    "accepted_at": now,
                    "closed_on": None,
                    "idempotency_key": key,
                    "principal_outstanding_fen": amount_fen,
                    "earliest_unpaid_due": schedule.due_dates[0],
                    "closed_through": today - timedelta(days=1),
                    "interest_booked_fen": 0,
                    "penalty_booked_fen": 0,
                    "dpd": 0,
                    **repo.snapshot_columns(state),
                    **repo.eod_columns(state),
                },
            )
        )
        _INSERT_INSTALLMENTS.run_many(conn, repo.installment_rows(customer_id, loan_id, state))
        payment_store.insert(
            conn,
            key=payment_store.disbursement_key(key),
            kind=PaymentKind.DISBURSE,
            customer_id=customer_id,
            loan_id=loan_id,
            amount_fen=amount_fen,
            business_date=today,
            at=now,
            sent=pay_now,  # paid in process: taken at once, sent right after the commit
        )
        _LINE_DRAWN.run(conn, {"cid": customer_id, "amount": amount_fen, "at": now})
        response = {
            "loan_id": loan_id,
            "status": LoanStatus.PENDING.value,
            "customer_id": customer_id,
            "principal": format_yuan(amount_fen),
            "term_months": term_months,
            "method": method.value,
            "drawn_on": today.isoformat(),
            "daily_rate": str(schedule.rate),
            "annual_simple_rate": _pct(schedule.rate.annual_simple_bp100()),
            "apr": _pct(apr_bp100(schedule.principal_fen, schedule.totals)),
            "rate_capped": schedule.rate.units != line.rate_units,
            "first_due_date": schedule.due_dates[0].isoformat(),
        }
        answer_key(conn, key, response)
        accepted.append(True)
        return response

    answer = p.transaction(work)
    if not pay_now:
        return answer
    from microloan.service.payments import settle_draw  # it records through this module

    return settle_draw(p, answer, key, taken=bool(accepted))


# ---------------------------------------------------------------------------------------------
# Repayment


def repay(
    p: Platform,
    customer_id: int,
    loan_id: int | None,
    amount_fen: int,
    key: str,
    *,
    source: str = "borrower",
) -> dict[str, Any]:
    """Take a repayment for one loan, or for "all" of the customer's loans (§5)."""
    key = check_key(key)
    if amount_fen <= 0:
        raise InvalidInput("must be more than 0", field="amount")
    digest = request_hash("repay", customer_id, loan_id or "all", amount_fen)

    def work(conn: sa.Connection) -> dict[str, Any]:
        prior = claim_key(conn, key, customer_id, "repay", digest, p.now())
        if prior is not None:
            return dict(prior)
        head = _CLOCK[p.is_postgres].one(conn)
        if head.clock_mode is None:
            read_clock(conn, p.now)  # raises "not initialised"
        today = clock_view(head.clock_mode, head.clock_open, head.clock_closed, p.now).open_date
        rows = _lock_open_loans(conn, customer_id, loan_id)
        lives = repo.live(conn, rows)
        states = {lid: state for lid, (state, _pending) in lives.items()}
        payoffs = {lid: L.payoff(s, today).total_fen for lid, s in states.items()}
        total = sum(payoffs.values())
        if amount_fen > total:
            raise RepaymentRefused(
                f"amount {format_yuan(amount_fen)} is more than the payoff "
                f"{format_yuan(total)} yuan",
                code="loan.repay.exceeds_payoff",
                field="amount",
            )
        if loan_id is not None:
            shares = {loan_id: amount_fen}
        else:
            shares = split_across_loans(
                [OpenLoan(r.loan_id, r.drawn_on, states[r.loan_id]) for r in rows],
                today,
                amount_fen,
            )
        by_id = {r.loan_id: r for r in rows}
        parts = [
            _apply_repayment(p, conn, by_id[lid], lives[lid], today, share, key, source)
            for lid, share in sorted(shares.items())
        ]
        _update_line(conn, customer_id, today, p, parts)
        for part in parts:
            del part["principal_fen"]
        response = {
            "customer_id": customer_id,
            "amount": format_yuan(amount_fen),
            "business_date": today.isoformat(),
            "loans": parts,
        }
        answer_key(conn, key, response)
        return response

    return p.transaction(work)


def _lock_open_loans(conn: sa.Connection, customer_id: int, loan_id: int | None) -> list[Any]:
    if loan_id is not None:
        row = _LOCK_LOAN.one_or_none(conn, {"cid": customer_id, "lid": loan_id})
        if row is None:
            raise NotFound(
                f"customer {customer_id} has no loan {loan_id}", code="loan.not_found", field="loan"
            )
        if row.status != LoanStatus.OPEN.value:
            raise RepaymentRefused(
                f"loan {loan_id} is {row.status} and takes no repayments",
                code="loan.repay.not_open",
                field="loan",
            )
        return [row]
    rows = _LOCK_OPEN_LOANS.rows(conn, {"cid": customer_id})
    if not rows:
        raise RepaymentRefused(
            f"customer {customer_id} has no open loan",
            code="loan.repay.nothing_open",
            field="customer",
        )
    return rows


def _apply_repayment(
    p: Platform,
    conn: sa.Connection,
    row: Any,
    live: tuple[L.LoanState, list[repo.StoredRepayment]],
    today: date,
    amount_fen: int,
    key: str,
    source: str,
) -> dict[str, Any]:
    state, pending = live
    new_state, alloc = L.repay(state, today, amount_fen)
    on_interest, on_penalty = repo.on_balance_now(row, pending)
    written_off = row.written_off_on is not None
    off = off_balance_split(
        alloc,
        non_accrual=bool(row.non_accrual),
        written_off=written_off,
        interest_on_balance_fen=on_interest,
        penalty_on_balance_fen=on_penalty,
    )
    now = p.now()
    _INSERT_REPAYMENT.run(
        conn,
        {
            "customer_id": row.customer_id,
            "loan_id": row.loan_id,
            "business_date": today,
            "amount_fen": amount_fen,
            "penalty_fen": alloc.penalty_fen,
            "interest_fen": alloc.interest_fen,
            "principal_fen": alloc.principal_fen,
            "prepaid_fen": alloc.prepaid_principal_fen,
            "idempotency_key": key,
            "source": source,
            "created_at": now,
            "off_interest_fen": off.interest_fen,
            "off_penalty_fen": off.penalty_fen,
            "off_principal_fen": off.principal_fen,
        },
    )
    post(
        conn,
        repayment_entry(alloc, off, written_off=written_off),
        book=row.book_id,
        business_date=today,
        reference=f"repay:{key}",
        created_at=now,
        customer_id=row.customer_id,
        loan_id=row.loan_id,
    )
    closed = L.payoff(new_state, today).total_fen == 0
    _LOAN_REPAID.run(
        conn,
        {
            "lid": row.loan_id,
            "principal_outstanding_fen": new_state.principal_outstanding_fen,
            "earliest_unpaid_due": None if closed else L.earliest_unpaid_due(new_state),
            "status": (
                loan_transition(LoanStatus(row.status), LoanEvent.SETTLED).value
                if closed
                else row.status
            ),
            "closed_on": today if closed else None,
        },
    )
    return {
        "loan_id": row.loan_id,
        "amount": format_yuan(amount_fen),
        "penalty": format_yuan(alloc.penalty_fen),
        "interest": format_yuan(alloc.interest_fen),
        "principal": format_yuan(alloc.principal_fen),
        "prepaid_principal": format_yuan(alloc.prepaid_principal_fen),
        "payoff_after": format_yuan(L.payoff(new_state, today).total_fen),
        "closed": closed,
        "principal_fen": alloc.principal_fen,
    }


def _update_line(
    conn: sa.Connection, customer_id: int, today: date, p: Platform, parts: list[dict[str, Any]]
) -> None:
    """Move the line's live figures by what the repayment changed (increments, so a draw
    committed meanwhile is never overwritten); the overdue flag is recomputed at once."""
    principal = sum(int(part["principal_fen"]) for part in parts)
    closed = sum(1 for part in parts if part["closed"])
    _LINE_REPAID.run(
        conn,
        {
            "cid": customer_id,
            "principal": principal,
            "closed": closed,
            "today": today,
            "at": p.now(),
        },
    )


# ---------------------------------------------------------------------------------------------
# Reads


_LOAN_AND_CLOCK = Prepared(
    sa.select(*repo.LOAN_COLUMNS, *clock_columns()).where(loan.c.loan_id == sa.bindparam("lid"))
)
# the same, with the loan's disbursement (one at most) joined on
_LOAN_CLOCK_AND_PAYMENT = Prepared(
    sa.select(*repo.LOAN_COLUMNS, *clock_columns(), *payment_store.DISBURSEMENT_COLUMNS)
    .select_from(loan.outerjoin(payment, payment_store.disbursement_of(loan)))
    .where(loan.c.loan_id == sa.bindparam("lid"))
)


def _read_loan(
    conn: sa.Connection,
    p: Platform,
    loan_id: int,
    customer_id: int | None = None,
    *,
    query: Prepared = _LOAN_AND_CLOCK,
) -> tuple[date, Any, L.LoanState]:
    """Today, and the loan's row and state (the clock read in the loan's own statement); a
    loan of another customer than ``customer_id`` (when given) is refused exactly as one that
    does not exist."""
    row = query.one_or_none(conn, {"lid": loan_id})
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise NotFound(f"loan {loan_id} does not exist", code="loan.not_found", field="loan")
    if row.clock_mode is None:
        read_clock(conn, p.now)  # raises "not initialised"
    today = clock_view(row.clock_mode, row.clock_open, row.clock_closed, p.now).open_date
    return today, row, repo.live_one(conn, row)


_LISTED = Prepared(
    sa.select(
        loan.c.loan_id,
        loan.c.status,
        loan.c.principal_fen,
        loan.c.principal_outstanding_fen,
        loan.c.term_months,
        loan.c.method,
        loan.c.drawn_on,
        loan.c.closed_on,
    )
    .where(loan.c.customer_id == sa.bindparam("cid"))
    .order_by(loan.c.loan_id.desc())
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


def list_loans(p: Platform, customer_id: int, *, limit: int = MAX_LISTED_LOANS) -> dict[str, Any]:
    """The customer's loans, open and closed, newest first, cut at ``limit``."""
    assert 1 <= limit <= MAX_LISTED_LOANS, limit
    with p.reading() as conn:
        rows = _LISTED.rows(conn, {"cid": customer_id, "limit": limit})
    loans = [
        {
            "loan_id": r.loan_id,
            "status": r.status,
            "principal": format_yuan(r.principal_fen),
            "principal_outstanding": format_yuan(r.principal_outstanding_fen),
            "term_months": r.term_months,
            "method": r.method,
            "drawn_on": r.drawn_on.isoformat(),
            "closed_on": r.closed_on.isoformat() if r.closed_on else None,
        }
        for r in rows
    ]
    return {"customer_id": customer_id, "loans": loans}


def payoff(p: Platform, loan_id: int, *, customer_id: int | None = None) -> dict[str, Any]:
    """What clears the loan today; only a loan of ``customer_id`` when given."""
    with p.reading() as conn:
        today, _row, state = _read_loan(conn, p, loan_id, customer_id)
    brk = L.payoff(state, today)
    return {
        "loan_id": loan_id,
        "date": today.isoformat(),
        "payoff": format_yuan(brk.total_fen),
        "principal": format_yuan(brk.principal_fen),
        "interest": format_yuan(brk.interest_fen),
        "penalty": format_yuan(brk.penalty_fen),
    }


def show_loan(p: Platform, loan_id: int, *, customer_id: int | None = None) -> dict[str, Any]:
    """The loan, its schedule and its payment; only a loan of ``customer_id`` when given."""
    with p.reading() as conn:
        today, row, state = _read_loan(conn, p, loan_id, customer_id, query=_LOAN_CLOCK_AND_PAYMENT)
    disbursement = payment_store.disbursement_of_row(row)
    live = L.advance(state, today)
    brk = L.payoff(live, today)
    cur = L.current_index(live, today)
    rate = DailyRate(row.rate_units)
    open_interest = live.open_interest_fen()
    schedule = []
    for i, inst in enumerate(live.installments):
        interest = inst.interest_fen
        if interest is None:
            interest = open_interest if i == cur else _projected_interest(live, i)
        schedule.append(
            {
                "period": inst.period,
                "due_date": inst.due_date.isoformat(),
                "principal": format_yuan(inst.principal_fen),
                "interest": format_yuan(interest),
                "interest_fixed": inst.interest_fen is not None,
                "principal_paid": format_yuan(inst.principal_paid_fen),
                "interest_paid": format_yuan(inst.interest_paid_fen),
                "status": _installment_status(inst, today),
            }
        )
    return {
        "loan_id": row.loan_id,
        "customer_id": row.customer_id,
        "status": row.status,
        "principal": format_yuan(row.principal_fen),
        "term_months": row.term_months,
        "method": row.method,
        "drawn_on": row.drawn_on.isoformat(),
        "closed_on": row.closed_on.isoformat() if row.closed_on else None,
        "daily_rate": str(rate),
        "annual_simple_rate": _pct(rate.annual_simple_bp100()),
        "apr": _pct(_loan_apr_bp100(row)),
        "as_of": today.isoformat(),
        "dpd": L.days_past_due(live, today),
        "principal_outstanding": format_yuan(live.principal_outstanding_fen),
        "payoff": format_yuan(brk.total_fen),
        "penalty_due": format_yuan(brk.penalty_fen),
        "interest_accrued": format_yuan(live.interest_accrued_fen),
        "schedule": schedule,
        "disbursement": disbursement,  # the payment's state, and why it failed (中文 English)
    }


def _loan_apr_bp100(row: Any) -> int:
    """The APR of the loan's schedule as drawn (labelled APR, monthly IRR × 12)."""
    drawn = build_schedule(
        row.principal_fen,
        row.term_months,
        DailyRate(row.rate_units),
        Method(row.method),
        row.drawn_on,
    )
    return apr_bp100(drawn.principal_fen, drawn.totals)


def _projected_interest(state: L.LoanState, index: int) -> int:
    """Interest a future period will carry if every installment is paid on time."""
    balance = sum(i.principal_left_fen for i in state.installments[index:])
    prev = state.installments[index - 1].due_date if index else state.drawn_on
    days = (state.installments[index].due_date - prev).days
    return interest_fen(balance, state.rate.units, days)


def _installment_status(inst: L.Installment, today: date) -> str:
    if (
        inst.principal_left_fen == 0
        and inst.interest_fen is not None
        and inst.interest_left_fen() == 0
    ):
        return "paid"
    if inst.due_date < today:
        return "overdue"
    return "due" if inst.due_date == today else "not_due"


def _pct(bp100: int) -> str:
    return format_percent_bp100(bp100)
