"""Manual review of applications sent to review, and re-scoring of existing lines
(access-and-decisions §3): raise, lower or freeze; existing loans keep their rates."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from microloan.decisions.policy import (
    Outcome,
)
from microloan.domain.line import LineEvent, LineStatus, line_transition
from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import NotFound, RuleViolation
from microloan.service.decision_context import read_context
from microloan.service.decisions import _grant, _insert_decision, assess
from microloan.service.operators import Operator, audit
from microloan.service.platform import Platform
from microloan.store.schema import (
    credit_line,
    decision,
    identity,
    review_case,
)


def review_queue(p: Platform, *, status: str = "open") -> list[dict[str, Any]]:
    with p.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                review_case, decision.c.limit_fen, decision.c.grade, identity.c.id_number_masked
            )
            .join(decision, decision.c.decision_id == review_case.c.decision_id)
            .join(identity, identity.c.customer_id == review_case.c.customer_id)
            .where(review_case.c.status == status)
            .order_by(review_case.c.case_id)
        ).all()
    return [
        {
            "case_id": r.case_id,
            "decision_id": r.decision_id,
            "customer_id": r.customer_id,
            "id_number": r.id_number_masked,
            "grade": r.grade,
            "proposed_limit": None if r.limit_fen is None else format_yuan(r.limit_fen),
            "signals": json.loads(r.signals),
            "status": r.status,
            "opened_at": r.opened_at.isoformat(),
        }
        for r in rows
    ]


def decide_review(
    p: Platform, op: Operator, case_id: int, *, approve: bool, note: str = ""
) -> dict[str, Any]:
    """An operator's decision on a case: approval grants the offer the policy computed."""
    op.require("risk_analyst", "administrator")

    def work(conn: sa.Connection) -> dict[str, Any]:
        case = conn.execute(
            sa.select(review_case).where(review_case.c.case_id == case_id).with_for_update()
        ).first()
        if case is None:
            raise NotFound(f"no review case {case_id}", field="case")
        if case.status != "open":
            raise RuleViolation(
                f"case {case_id} is already {case.status}", code="review.decided", field="case"
            )
        d = conn.execute(
            sa.select(decision).where(decision.c.decision_id == case.decision_id)
        ).one()
        answer: dict[str, Any] = {"case_id": case_id, "customer_id": case.customer_id}
        if approve:
            held = conn.execute(
                sa.select(credit_line.c.customer_id).where(
                    credit_line.c.customer_id == case.customer_id
                )
            ).first()
            if held is not None:
                raise RuleViolation("the customer already has a line", code="line.exists")
            _grant(conn, p, case.customer_id, d.limit_fen, d.rate_units)
            answer |= {
                "limit": format_yuan(d.limit_fen),
                "daily_rate": str(DailyRate(d.rate_units)),
            }
        status = "approved" if approve else "declined"
        conn.execute(
            review_case.update()
            .where(review_case.c.case_id == case_id)
            .values(
                status=status,
                decided_by=op.operator_id,
                decided_at=p.now(),
                note=note[:200] or None,
            )
        )
        audit(
            conn,
            p,
            op,
            f"review.{status}",
            f"customer:{case.customer_id}",
            case_id=case_id,
            note=note,
        )
        return answer | {"status": status, "decided_by": op.username}

    return p.transaction(work)


# -- re-scoring ---------------------------------------------------------------------------------


def _rescore_one(p: Platform, customer_id: int, channel: str) -> tuple[str, dict[str, Any]]:
    ctx = read_context(p, customer_id, channel, None, for_rescore=True)
    a = assess(p, ctx, with_device=False)

    def work(conn: sa.Connection) -> tuple[str, dict[str, Any]]:
        line = conn.execute(
            sa.select(credit_line).where(credit_line.c.customer_id == customer_id).with_for_update()
        ).one()
        decision_id = _insert_decision(conn, a, "rescore")
        v = a.verdict
        status = LineStatus(line.status)
        if v.outcome is Outcome.DECLINED or v.offer is None:
            if status is not LineStatus.ACTIVE:
                return "unchanged", {"decision_id": decision_id}
            new = line_transition(status, LineEvent.FREEZE, open_loans=line.open_loans)
            conn.execute(
                credit_line.update()
                .where(credit_line.c.customer_id == customer_id)
                .values(status=new.value, updated_at=p.now())
            )
            return "frozen", {"decision_id": decision_id, "reasons": list(v.reasons)}
        limit, rate = v.offer.limit_fen, v.offer.rate.units
        change = (
            "raised"
            if limit > line.limit_fen
            else "lowered"
            if limit < line.limit_fen
            else "unchanged"
        )
        if status is LineStatus.ACTIVE and (change != "unchanged" or rate != line.rate_units):
            # existing loans keep their own rate; the line's rate is for new draws
            conn.execute(
                credit_line.update()
                .where(credit_line.c.customer_id == customer_id)
                .values(limit_fen=limit, rate_units=rate, updated_at=p.now())
            )
        elif status is not LineStatus.ACTIVE:
            change = "unchanged"
        return change, {
            "decision_id": decision_id,
            "from": format_yuan(line.limit_fen),
            "to": format_yuan(limit),
        }

    return p.transaction(work)


def rescore(p: Platform, *, limit: int | None = None) -> dict[str, Any]:
    """Review every line against new behaviour: raise, lower or freeze (loans keep their rate)."""
    with p.engine.connect() as conn:
        q = (
            sa.select(credit_line.c.customer_id)
            .where(credit_line.c.status != LineStatus.CLOSED.value)
            .order_by(credit_line.c.customer_id)
        )
        ids = list(conn.execute(q if limit is None else q.limit(limit)).scalars())
        # each line is reviewed through the channel its customer last applied by
        last = (
            sa.select(decision.c.customer_id, sa.func.max(decision.c.decision_id).label("last"))
            .where(decision.c.customer_id.in_(ids))
            .group_by(decision.c.customer_id)
            .subquery()
        )
        channel_of = dict(
            conn.execute(
                sa.select(decision.c.customer_id, decision.c.channel).join(
                    last, last.c.last == decision.c.decision_id
                )
            ).all()
        )
    todo = [(cid, channel_of[cid]) for cid in ids if cid in channel_of]
    counts = {"raised": 0, "lowered": 0, "frozen": 0, "unchanged": 0}
    changes = []
    for customer_id, channel in todo:
        change, detail = _rescore_one(p, customer_id, channel)
        counts[change] += 1
        if change != "unchanged":
            changes.append({"customer_id": customer_id, "change": change, **detail})
    return {"reviewed": len(todo), **counts, "changes": changes}
