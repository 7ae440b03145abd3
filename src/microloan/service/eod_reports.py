"""The reports of the portfolio, read back from stored rows, never recomputed: what the end of
day leaves behind (its runs, ``eod status``, and the day's figures, ``portfolio``) and the
applications decided on each business date (``decisions_by_day``)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.decisions.policy import Outcome
from microloan.domain.classification import PortfolioFigures, Tier, format_ratio
from microloan.domain.money import format_yuan
from microloan.errors import NotFound
from microloan.service.clock import first_date_to_close, read_clock
from microloan.service.platform import Platform
from microloan.servicing.day_close import add_figures
from microloan.store.schema import book, decision, eod_run, portfolio_day, recon_issue

MAX_DECISION_DAYS = 366  # business dates counted at most by ``decisions_by_day``
DECISION_OUTCOMES = tuple(o.value for o in Outcome)  # approved, declined, review


def eod_status(p: Platform, *, limit: int = 10) -> dict[str, Any]:
    with p.engine.connect() as conn:
        clock = read_clock(conn, p.now)
        first = first_date_to_close(conn, clock)
        rows = conn.execute(sa.select(eod_run).order_by(eod_run.c.run_id.desc()).limit(limit)).all()
    pending = max(0, (clock.open_date - first).days)
    return {
        "open_date": clock.open_date.isoformat(),
        "last_closed_date": (
            None if clock.last_closed_date is None else clock.last_closed_date.isoformat()
        ),
        "dates_to_close": pending,
        "runs": [_run(r) for r in rows],
    }


def _run(r: Any) -> dict[str, Any]:
    detail = json.loads(r.detail) if r.detail else {}
    seconds = None
    if r.finished_at is not None:
        seconds = round((r.finished_at - r.started_at).total_seconds(), 3)
    return {
        "run_id": r.run_id,
        "business_date": r.business_date.isoformat(),
        "status": r.status,
        "step": r.step,
        "started_at": r.started_at.isoformat(),
        "finished_at": None if r.finished_at is None else r.finished_at.isoformat(),
        "seconds": seconds,
        "loans": r.loans,
        "total": r.total,
        "chunks": r.chunks,
        "interest": format_yuan(r.interest_fen),
        "penalty": format_yuan(r.penalty_fen),
        "overdue_loans": r.overdue_loans,
        "blocked_lines": r.blocked_lines,
        "non_accrual_loans": r.non_accrual_loans,
        "write_off_candidates": r.write_off_candidates,
        "provision_change": format_yuan(r.provision_fen),
        "reminders_due": r.reminders_due,
        "reconciled": r.reconciled,
        "mismatches": r.mismatches,
        "failures": r.failures,
        **detail.get("ratios", {}),
        "step_seconds": detail.get("seconds", {}),
    }


def portfolio(p: Platform, on: date | None = None) -> dict[str, Any]:
    """The day's figures (default: the last closed date), for all books and for each."""
    with p.engine.connect() as conn:
        if on is None:
            on = read_clock(conn, p.now).last_closed_date
            if on is None:
                raise NotFound(
                    "no business date has been closed yet: run `microloan eod`",
                    code="portfolio.no_figures",
                    field="date",
                )
        rows = conn.execute(
            sa.select(portfolio_day, book.c.code)
            .join(book, book.c.id == portfolio_day.c.book_id)
            .where(portfolio_day.c.business_date == on)
            .order_by(book.c.code)
        ).all()
        issues = conn.execute(
            sa.select(recon_issue.c.kind, recon_issue.c.detail).where(
                recon_issue.c.business_date == on
            )
        ).all()
    if not rows:
        raise NotFound(
            f"there are no figures for {on}: it has not been closed, or nothing was open",
            code="portfolio.no_figures",
            field="date",
        )
    total: dict[str, int] = add_figures({}, {})
    books = {}
    for r in rows:
        f = json.loads(r.figures)
        total = add_figures(total, f)
        books[r.code] = _figures(f)
    return {
        "business_date": on.isoformat(),
        **_figures(total),
        "books": books,
        "reconciliation": {
            "ok": not issues,
            "issues": [{"kind": i.kind, "detail": i.detail} for i in issues[:50]],
        },
    }


def _figures(f: dict[str, int]) -> dict[str, Any]:
    figs = PortfolioFigures(f["balance_fen"], f["npl_fen"], f["allowance_fen"])
    return {
        "npl_ratio": format_ratio(figs.npl_ratio),
        "provision_coverage": format_ratio(figs.provision_coverage),
        "loan_provision_ratio": format_ratio(figs.loan_provision_ratio),
        "loans": f["loans"],
        "loan_balance": format_yuan(f["balance_fen"]),
        "npl_balance": format_yuan(f["npl_fen"]),
        "allowance": format_yuan(f["allowance_fen"]),
        "interest_receivable": format_yuan(f["recv_interest_fen"]),
        "penalty_receivable": format_yuan(f["recv_penalty_fen"]),
        "off_balance_interest": format_yuan(f["memo_interest_fen"]),
        "off_balance_penalty": format_yuan(f["memo_penalty_fen"]),
        "written_off_principal": format_yuan(f["written_off_principal_fen"]),
        "overdue_loans": f["overdue_loans"],
        "non_accrual_loans": f["non_accrual_loans"],
        "write_off_candidates": f["write_off_candidates"],
        "written_off_loans": f["written_off_loans"],
        "interest_accrued": format_yuan(f["interest_fen"]),
        "penalty_accrued": format_yuan(f["penalty_fen"]),
        "by_tier": {
            t.value: {
                "label": t.label,
                "loans": f[f"{t.value}_loans"],
                "principal": format_yuan(f[f"{t.value}_principal_fen"]),
                "allowance": format_yuan(f[f"{t.value}_allowance_fen"]),
            }
            for t in Tier
        },
    }


def decisions_by_day(p: Platform, *, days: int) -> list[tuple[str, dict[str, int]]]:
    """Applications decided on each of the last ``days`` business dates that had any, counted
    by outcome (every outcome named, zeros included), oldest first."""
    assert 1 <= days <= MAX_DECISION_DAYS, days
    with p.engine.connect() as conn:
        dates = list(
            conn.execute(
                sa.select(decision.c.business_date)
                .where(decision.c.kind == "apply")
                .group_by(decision.c.business_date)
                .order_by(decision.c.business_date.desc())
                .limit(days)
            ).scalars()
        )
        if not dates:
            return []
        rows = conn.execute(
            sa.select(decision.c.business_date, decision.c.outcome, sa.func.count())
            .where(decision.c.kind == "apply", decision.c.business_date >= min(dates))
            .group_by(decision.c.business_date, decision.c.outcome)
        ).all()
    counts = {d.isoformat(): dict.fromkeys(DECISION_OUTCOMES, 0) for d in dates}
    for on, outcome, n in rows:
        counts[on.isoformat()][outcome] = int(n)
    assert len(counts) == len(dates) <= days
    return sorted(counts.items())
