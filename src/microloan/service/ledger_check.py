"""``microloan ledger check``: prove the books balance and every loan matches its history.

1. Every entry and every book sums to zero.
2. Each loan is rebuilt from its terms and replayed from its repayments alone: the stored
   snapshot, the live figures, each repayment's split and the sum of its accrual records must
   all equal the replay.
3. Each loan's ledger balances (its own journal lines plus its accrual records) equal the replay,
   and the control accounts equal the sum over loans.
Problems are collected, not raised: the report lists all of them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.domain import loan as L
from microloan.domain.books import Account
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method, build_schedule
from microloan.service.platform import Platform
from microloan.store import loans as repo
from microloan.store.schema import accrual, book, journal_entry, journal_line, loan

BATCH = 1000


def check_ledger(p: Platform) -> dict[str, Any]:
    problems: list[str] = []
    with p.engine.connect() as conn:
        books = _check_books(conn, problems)
        control: dict[str, int] = defaultdict(int)
        checked = 0
        last_id = 0
        while True:
            rows = list(
                conn.execute(
                    sa.select(*repo.LOAN_COLUMNS)
                    # pending and failed loans (not disbursed) have no books to check
                    .where(loan.c.loan_id > last_id, loan.c.status.in_(("open", "closed")))
                    .order_by(loan.c.loan_id)
                    .limit(BATCH)
                )
            )
            if not rows:
                break
            _check_loans(conn, rows, control, problems)
            checked += len(rows)
            last_id = rows[-1].loan_id
        gl = dict(
            conn.execute(
                sa.select(journal_line.c.account, sa.func.sum(journal_line.c.amount_fen)).group_by(
                    journal_line.c.account
                )
            ).all()
        )
    checked_accounts = [
        Account.LOAN_PRINCIPAL,
        Account.INTEREST_RECEIVABLE,
        Account.PENALTY_RECEIVABLE,
        Account.OFF_INTEREST,
        Account.OFF_PENALTY,
        Account.WRITTEN_OFF_PRINCIPAL,
    ]
    for account in checked_accounts:
        if int(gl.get(account.value, 0)) != control[account.value]:
            problems.append(
                f"account {account.value} {account.label}: ledger "
                f"{int(gl.get(account.value, 0))} fen, loans add up to "
                f"{control[account.value]} fen"
            )
    income = sum(
        int(gl.get(a.value, 0))
        for a in (Account.INTEREST_INCOME, Account.PENALTY_INCOME, Account.RECOVERY_INCOME)
    )
    if income != control["income"]:
        problems.append(
            f"interest, penalty and recovery income: ledger {income} fen, loans add up to "
            f"{control['income']} fen"
        )
    return {
        "ok": not problems,
        "books": books,
        "loans_checked": checked,
        "problems": problems[:200],
        "problem_count": len(problems),
    }


def _check_books(conn: sa.Connection, problems: list[str]) -> list[dict[str, Any]]:
    unbalanced = (
        conn.execute(
            sa.select(journal_line.c.entry_id)
            .group_by(journal_line.c.entry_id)
            .having(sa.func.sum(journal_line.c.amount_fen) != 0)
            .limit(20)
        )
        .scalars()
        .all()
    )
    problems.extend(f"entry {e} does not balance" for e in unbalanced)
    out = []
    for b in conn.execute(sa.select(book.c.id, book.c.code)).all():
        total, lines = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(journal_line.c.amount_fen), 0), sa.func.count()
            ).where(journal_line.c.book_id == b.id)
        ).one()
        entries = conn.execute(
            sa.select(sa.func.count())
            .select_from(journal_entry)
            .where(journal_entry.c.book_id == b.id)
        ).scalar_one()
        if total != 0:
            problems.append(f"book {b.code} does not balance: {total} fen")
        out.append({"book": b.code, "balanced": total == 0, "entries": entries, "lines": lines})
    return out


def _check_loans(
    conn: sa.Connection, rows: list[Any], control: dict[str, int], problems: list[str]
) -> None:
    ids = [r.loan_id for r in rows]
    insts = repo.load_installments(conn, ids)
    repayments = repo.load_repayments(conn, ids)
    accrued = {
        r.loan_id: (int(r.i), int(r.p), int(r.oi), int(r.op))
        for r in conn.execute(
            sa.select(
                accrual.c.loan_id,
                sa.func.sum(accrual.c.interest_fen).label("i"),
                sa.func.sum(accrual.c.penalty_fen).label("p"),
                sa.func.sum(accrual.c.off_interest_fen).label("oi"),
                sa.func.sum(accrual.c.off_penalty_fen).label("op"),
            )
            # the key leads with the date: one probe per date the batch's loans can have
            .where(accrual.c.business_date.in_(_dates_of(rows)), accrual.c.loan_id.in_(ids))
            .group_by(accrual.c.loan_id)
        )
    }
    lines: dict[tuple[int, str], int] = defaultdict(int)
    for lid, account, amount in conn.execute(
        sa.select(
            journal_line.c.loan_id, journal_line.c.account, sa.func.sum(journal_line.c.amount_fen)
        )
        .where(journal_line.c.loan_id.in_(ids))
        .group_by(journal_line.c.loan_id, journal_line.c.account)
    ):
        lines[(lid, account)] = int(amount)
    for r in rows:
        try:
            _check_loan(
                r,
                insts[r.loan_id],
                repayments.get(r.loan_id, []),
                accrued.get(r.loan_id, (0, 0, 0, 0)),
                lines,
                control,
                problems,
            )
        except AssertionError as exc:
            problems.append(f"loan {r.loan_id}: {exc}")


def _dates_of(rows: list[Any]) -> list[date]:
    """Every business date from the first draw of these loans to the last date closed."""
    first = min(r.drawn_on for r in rows)
    last = max(max(r.closed_through, r.accrued_through) for r in rows)
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _check_loan(
    r: Any,
    insts: list[Any],
    repayments: list[repo.StoredRepayment],
    accrued: tuple[int, int, int, int],
    lines: dict[tuple[int, str], int],
    control: dict[str, int],
    problems: list[str],
) -> None:
    lid = r.loan_id
    schedule = build_schedule(
        r.principal_fen, r.term_months, DailyRate(r.rate_units), Method(r.method), r.drawn_on
    )
    state = L.open_loan(schedule)
    pending = [rp for rp in repayments if rp.business_date > r.closed_through]
    closed = [rp for rp in repayments if rp.business_date <= r.closed_through]
    snap = repo.replay(state, closed)
    snap = L.advance(snap, max(r.closed_through, r.drawn_on))
    stored = repo.snapshot_state(r, insts)
    if _fingerprint(snap) != _fingerprint(stored):
        problems.append(f"loan {lid}: stored snapshot differs from its replayed history")
    live = repo.replay(snap, pending)
    on_i, on_p, off_i, off_p = accrued
    written_off = r.written_off_on is not None
    paid_i = sum(rp.interest_fen for rp in closed)
    paid_p = sum(rp.penalty_fen for rp in closed)
    now_i, now_p = repo.on_balance_now(r, pending)
    memo_i = r.interest_memo_fen - sum(rp.off_interest_fen for rp in pending)
    memo_p = r.penalty_memo_fen - sum(rp.off_penalty_fen for rp in pending)
    principal = live.principal_outstanding_fen

    def line(account: Account) -> int:
        return lines[(lid, account.value)]

    expect = {
        "principal": (r.principal_outstanding_fen, principal),
        "interest accrued": (on_i + off_i, snap.interest_accrued_fen),
        "penalty accrued": (on_p + off_p, snap.penalty_accrued_fen),
        "interest booked": (r.interest_booked_fen, snap.interest_accrued_fen),
        "penalty booked": (r.penalty_booked_fen, snap.penalty_accrued_fen),
        "interest owed at the close": (
            r.interest_recv_fen + r.interest_memo_fen,
            snap.interest_accrued_fen - paid_i,
        ),
        "penalty owed at the close": (
            r.penalty_recv_fen + r.penalty_memo_fen,
            snap.penalty_accrued_fen - paid_p,
        ),
        "principal in ledger": (
            line(Account.LOAN_PRINCIPAL),
            0 if written_off else principal,
        ),
        "written-off principal in ledger": (
            line(Account.WRITTEN_OFF_PRINCIPAL),
            principal if written_off else 0,
        ),
        "interest receivable in ledger": (on_i + line(Account.INTEREST_RECEIVABLE), now_i),
        "penalty receivable in ledger": (on_p + line(Account.PENALTY_RECEIVABLE), now_p),
        "off-balance interest in ledger": (off_i + line(Account.OFF_INTEREST), memo_i),
        "off-balance penalty in ledger": (off_p + line(Account.OFF_PENALTY), memo_p),
    }
    for what, (have, want) in expect.items():
        if have != want:
            problems.append(f"loan {lid}: {what} is {have} fen, its history says {want} fen")
    if min(r.interest_recv_fen, r.penalty_recv_fen, r.interest_memo_fen, r.penalty_memo_fen) < 0:
        problems.append(f"loan {lid}: a receivable is negative at the close")
    open_now = r.status == "open"
    if open_now == (r.closed_on is not None):
        problems.append(f"loan {lid}: status {r.status} disagrees with closed_on {r.closed_on}")
    if r.closed_on is not None and L.payoff(live, r.closed_on).total_fen != 0:
        problems.append(f"loan {lid}: closed on {r.closed_on} with money still owed")
    control[Account.LOAN_PRINCIPAL.value] += 0 if written_off else principal
    control[Account.WRITTEN_OFF_PRINCIPAL.value] += principal if written_off else 0
    control[Account.INTEREST_RECEIVABLE.value] += now_i
    control[Account.PENALTY_RECEIVABLE.value] += now_p
    control[Account.OFF_INTEREST.value] += memo_i
    control[Account.OFF_PENALTY.value] += memo_p
    control["income"] -= on_i + on_p
    control["income"] -= sum(
        rp.off_interest_fen + rp.off_penalty_fen + rp.off_principal_fen for rp in repayments
    )


def _fingerprint(s: L.LoanState) -> tuple[Any, ...]:
    return (
        s.accrued_through,
        s.period_interest_units,
        s.penalty_units,
        s.penalty_paid_fen,
        tuple(
            (
                i.period,
                i.due_date,
                i.principal_fen,
                i.interest_fen,
                i.principal_paid_fen,
                i.interest_paid_fen,
            )
            for i in s.installments
        ),
    )
