"""What a channel user sees on their own pages: where they stand (invited, onboarding steps,
line, latest application, loans), masked. Reads only; the pages call the other services to act.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from microloan.domain.line import LineStatus, LineView, check_draw
from microloan.domain.money import format_yuan
from microloan.errors import NotFound
from microloan.service import lending, onboarding
from microloan.service.platform import Platform
from microloan.store.schema import (
    channel_identity,
    credit_line,
    decision,
    invitation,
    loan,
    review_case,
)

MAX_LOANS = 200  # on the loans page (``lending.list_loans``): the open ones, then history
MAX_PERSONAS = 6  # of each kind on the demo login page
# the consents an application needs; the loan agreement is asked for with the first draw
APPLY_CONSENTS = ("credit_report", "sensitive_pi")
# decision details a borrower is not shown: the fraud signals and the model's internals
HIDDEN_REASON_PREFIX = "fraud."


def standing(p: Platform, channel: str, open_id: str) -> dict[str, Any]:
    """Invited or not, the customer behind the channel user, their onboarding steps, line and
    latest application: enough to say what the user can do next."""
    with p.reading() as conn:
        ident = conn.execute(
            sa.select(channel_identity.c.customer_id, channel_identity.c.referral_code).where(
                channel_identity.c.channel == channel, channel_identity.c.open_id == open_id
            )
        ).first()
        out: dict[str, Any] = {
            "channel": channel,
            "open_id": open_id,
            "invited": ident is not None,
            "customer_id": None if ident is None else ident.customer_id,
            "referral_code": None if ident is None else ident.referral_code,
            "profile": None,
            "steps": {"identity": False, "phone": False, "card": False, "consents": False},
            "line": None,
            "application": None,
        }
        if ident is None or ident.customer_id is None:
            return out
        cid = int(ident.customer_id)
        has_line = conn.execute(
            sa.select(credit_line.c.customer_id).where(credit_line.c.customer_id == cid)
        ).first()
        out["line"] = lending.line_summary(conn, cid) if has_line else None
        out["application"] = latest_application(conn, cid)
    prof = onboarding.profile(p, cid, steps=False)  # the audit trail is the operators'
    out["profile"] = prof
    out["steps"] = {
        "identity": True,
        "phone": prof["phone"] is not None,
        "card": bool(prof["cards"]),
        "consents": all(prof["consents"][k]["granted"] for k in APPLY_CONSENTS),
    }
    return out


def customer_of(p: Platform, channel: str, open_id: str) -> int | None:
    """The customer a channel user was verified as; None before identity verification."""
    with p.reading() as conn:
        found = conn.execute(
            sa.select(channel_identity.c.customer_id).where(
                channel_identity.c.channel == channel, channel_identity.c.open_id == open_id
            )
        ).scalar_one_or_none()
    return None if found is None else int(found)


def precheck_draw(p: Platform, customer_id: int, amount_fen: int, term_months: int) -> None:
    """The draw rules (lending-rules §2) against the line as it stands, to tell the borrower
    before they confirm; the draw itself checks them again under the line's lock."""
    with p.reading() as conn:
        row = conn.execute(
            sa.select(credit_line).where(credit_line.c.customer_id == customer_id)
        ).one_or_none()
    if row is None:
        raise NotFound("apply for a credit line first", code="line.not_found", field="customer")
    view = LineView(
        LineStatus(row.status),
        row.limit_fen,
        row.outstanding_principal_fen,
        row.pending_principal_fen,
        row.open_loans,
    )
    check_draw(view, amount_fen, term_months, overdue=bool(row.overdue_blocked), policy=p.policy)


def latest_application(conn: sa.Connection, customer_id: int) -> dict[str, Any] | None:
    """The customer's latest application, as the borrower may see it (no fraud signals)."""
    row = conn.execute(
        sa.select(
            decision.c.decision_id,
            decision.c.outcome,
            decision.c.limit_fen,
            decision.c.reasons,
            decision.c.business_date,
            review_case.c.status.label("review_status"),
        )
        .outerjoin(review_case, review_case.c.decision_id == decision.c.decision_id)
        .where(decision.c.customer_id == customer_id, decision.c.kind == "apply")
        .order_by(decision.c.decision_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    reasons = [r for r in json.loads(row.reasons) if not r.startswith(HIDDEN_REASON_PREFIX)]
    return {
        "decision_id": row.decision_id,
        "outcome": row.outcome,
        "limit": None if row.limit_fen is None else format_yuan(row.limit_fen),
        "reasons": reasons,
        "business_date": row.business_date.isoformat(),
        "review_status": row.review_status,
    }


def owns_loan(conn: sa.Connection, customer_id: int, loan_id: int) -> bool:
    owner = conn.execute(
        sa.select(loan.c.customer_id).where(loan.c.loan_id == loan_id)
    ).scalar_one_or_none()
    return owner == customer_id


def payoffs(p: Platform, customer_id: int) -> list[dict[str, Any]]:
    """What clears each open loan today, oldest first (the order a repayment of all pays)."""
    with p.reading() as conn:
        ids = list(
            conn.execute(
                sa.select(loan.c.loan_id)
                .where(loan.c.customer_id == customer_id, loan.c.status == "open")
                .order_by(loan.c.loan_id)
            ).scalars()
        )
    return [lending.payoff(p, loan_id) for loan_id in ids]


def personas(p: Platform, channel: str) -> dict[str, list[dict[str, Any]]]:
    """Channel users to log in as on the demo login: invited but not yet onboarded, and
    customers (with their line, if any)."""
    with p.reading() as conn:
        invited = conn.execute(
            sa.select(channel_identity.c.open_id)
            .join(
                invitation,
                sa.and_(
                    invitation.c.channel == channel_identity.c.channel,
                    invitation.c.open_id == channel_identity.c.open_id,
                ),
            )
            .where(
                channel_identity.c.channel == channel,
                channel_identity.c.customer_id.is_(None),
                invitation.c.status == "live",
            )
            .order_by(channel_identity.c.open_id)
            .limit(MAX_PERSONAS)
        ).all()
        customers = conn.execute(
            sa.select(
                channel_identity.c.open_id,
                credit_line.c.limit_fen,
            )
            .outerjoin(credit_line, credit_line.c.customer_id == channel_identity.c.customer_id)
            .where(
                channel_identity.c.channel == channel,
                channel_identity.c.customer_id.is_not(None),
            )
            .order_by(channel_identity.c.linked_at.desc())
            .limit(MAX_PERSONAS)
        ).all()
    return {
        "invited": [{"open_id": r.open_id} for r in invited],
        "customers": [
            {
                "open_id": r.open_id,
                "limit": None if r.limit_fen is None else format_yuan(r.limit_fen),
            }
            for r in customers
        ],
    }
