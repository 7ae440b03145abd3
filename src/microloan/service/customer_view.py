"""What operators see of a customer: a search and the customer 360 (profile, line, loans,
decisions, reviews, repayments and payments), with personal data masked only.

Identity numbers, phones and cards are stored masked next to their ciphertext; these views read
the masked columns and never the vault. Names are masked here (first character kept).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import NotFound
from microloan.service import onboarding
from microloan.service.lending import line_summary
from microloan.service.platform import Platform
from microloan.store.schema import (
    customer,
    decision,
    identity,
    loan,
    payment,
    repayment,
    review_case,
)

MAX_RESULTS = 50
MAX_ROWS = 100  # of each list in the 360 view, newest first


def mask_name(name: str) -> str:
    """``张三丰`` → ``张**``: enough to confirm a caller, not to learn a name."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def search_kind(q: str) -> str:
    """How ``q`` is read: a customer id, a phone's last four digits, or a name."""
    q = q.strip()
    if q.isdigit() and len(q) == 4:
        return "phone_last4"
    if q.isdigit():
        return "customer_id"
    return "name"


def search(p: Platform, q: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Customers by id, by the last four digits of their phone, or by (part of) their name."""
    assert 1 <= limit <= MAX_RESULTS
    q = q.strip()
    kind = search_kind(q)
    query = (
        sa.select(
            customer.c.customer_id,
            customer.c.name,
            identity.c.id_number_masked,
            identity.c.phone_masked,
        )
        .outerjoin(identity, identity.c.customer_id == customer.c.customer_id)
        .order_by(customer.c.customer_id)
        .limit(limit)
    )
    if kind == "phone_last4":
        # four digits are also a small customer id
        query = query.where(
            sa.or_(identity.c.phone_masked.endswith(q), customer.c.customer_id == int(q))
        )
    elif kind == "customer_id":
        if len(q) > 18:
            return []
        query = query.where(customer.c.customer_id == int(q))
    else:
        query = query.where(customer.c.name.contains(q, autoescape=True))
    with p.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "customer_id": r.customer_id,
            "name": mask_name(r.name),
            "id_number": r.id_number_masked,
            "phone": r.phone_masked,
        }
        for r in rows
    ]


def overview(p: Platform, customer_id: int) -> dict[str, Any]:
    """The customer 360, masked."""
    with p.engine.connect() as conn:
        name = conn.execute(
            sa.select(customer.c.name).where(customer.c.customer_id == customer_id)
        ).scalar_one_or_none()
        if name is None:
            raise NotFound(
                f"customer {customer_id} does not exist",
                code="customer.not_found",
                field="customer",
            )
        try:
            line: dict[str, Any] | None = line_summary(conn, customer_id)
        except NotFound:
            line = None
        lists = {
            "loans": _loans(conn, customer_id),
            "decisions": _decisions(conn, customer_id),
            "reviews": _reviews(conn, customer_id),
            "repayments": _repayments(conn, customer_id),
            "payments": _payments(conn, customer_id),
        }
    try:
        profile: dict[str, Any] | None = onboarding.profile(p, customer_id)
    except NotFound:
        profile = None  # no verified identity (a customer made by hand)
    if profile is not None:
        profile["name"] = mask_name(profile["name"])
    return {
        "customer_id": customer_id,
        "name": mask_name(name),
        "profile": profile,
        "line": line,
        **lists,
        "contacts": [],  # the platform keeps no contacts
    }


def _loans(conn: sa.Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(loan)
        .where(loan.c.customer_id == customer_id)
        .order_by(loan.c.loan_id.desc())
        .limit(MAX_ROWS)
    ).all()
    return [
        {
            "loan_id": r.loan_id,
            "status": r.status,
            "principal": format_yuan(r.principal_fen),
            "principal_outstanding": format_yuan(r.principal_outstanding_fen),
            "term_months": r.term_months,
            "method": r.method,
            "daily_rate": str(DailyRate(r.rate_units)),
            "drawn_on": r.drawn_on.isoformat(),
            "closed_on": None if r.closed_on is None else r.closed_on.isoformat(),
            # as of the last end of day
            "dpd": r.dpd,
            "tier": r.tier,
            "interest_receivable": format_yuan(r.interest_recv_fen),
            "penalty_receivable": format_yuan(r.penalty_recv_fen),
            "non_accrual": bool(r.non_accrual),
            "written_off_on": None if r.written_off_on is None else r.written_off_on.isoformat(),
        }
        for r in rows
    ]


def _decisions(conn: sa.Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(decision)
        .where(decision.c.customer_id == customer_id)
        .order_by(decision.c.decision_id.desc())
        .limit(MAX_ROWS)
    ).all()
    return [
        {
            "decision_id": r.decision_id,
            "kind": r.kind,
            "channel": r.channel,
            "outcome": r.outcome,
            "grade": r.grade,
            "score": r.score,
            "limit": None if r.limit_fen is None else format_yuan(r.limit_fen),
            "daily_rate": None if r.rate_units is None else str(DailyRate(r.rate_units)),
            "model_version": r.model_version,
            "reasons": json.loads(r.reasons),
            "business_date": r.business_date.isoformat(),
        }
        for r in rows
    ]


def _reviews(conn: sa.Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(review_case)
        .where(review_case.c.customer_id == customer_id)
        .order_by(review_case.c.case_id.desc())
        .limit(MAX_ROWS)
    ).all()
    return [
        {
            "case_id": r.case_id,
            "decision_id": r.decision_id,
            "status": r.status,
            "signals": json.loads(r.signals),
            "decided_by": r.decided_by,
            "note": r.note,
        }
        for r in rows
    ]


def _repayments(conn: sa.Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(repayment)
        .where(repayment.c.customer_id == customer_id)
        .order_by(repayment.c.repayment_id.desc())
        .limit(MAX_ROWS)
    ).all()
    return [
        {
            "repayment_id": r.repayment_id,
            "loan_id": r.loan_id,
            "business_date": r.business_date.isoformat(),
            "amount": format_yuan(r.amount_fen),
            "principal": format_yuan(r.principal_fen),
            "interest": format_yuan(r.interest_fen),
            "penalty": format_yuan(r.penalty_fen),
            "source": r.source,
        }
        for r in rows
    ]


def _payments(conn: sa.Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(payment)
        .where(payment.c.customer_id == customer_id)
        .order_by(payment.c.payment_id.desc())
        .limit(MAX_ROWS)
    ).all()
    return [
        {
            "payment_id": r.payment_id,
            "kind": r.kind,
            "loan_id": r.loan_id,
            "amount": format_yuan(r.amount_fen),
            "business_date": r.business_date.isoformat(),
            "status": r.status,
            "failure": r.failure,
        }
        for r in rows
    ]
