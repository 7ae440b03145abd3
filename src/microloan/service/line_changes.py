"""Line changes by hand (a new limit, a new rate for new draws, freeze, unfreeze): proposed by
one operator, applied only when another approves (maker-checker). Loans keep their own rates."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from microloan.domain.line import LineEvent, LineStatus, check_limit, line_transition
from microloan.domain.rates import DailyRate
from microloan.errors import InvalidInput, NotFound
from microloan.service.operators import Operator, on_approve, propose
from microloan.service.platform import Platform
from microloan.store.schema import credit_line

EVENTS = {"freeze": LineEvent.FREEZE, "unfreeze": LineEvent.UNFREEZE}


def propose_change(
    p: Platform,
    op: Operator,
    customer_id: int,
    *,
    limit_fen: int | None = None,
    rate: DailyRate | None = None,
    event: str | None = None,
    reason: str,
) -> dict[str, Any]:
    """Record the change as a pending proposal; nothing changes until it is approved."""
    if limit_fen is None and rate is None and event is None:
        raise InvalidInput("give a new limit, a new rate, or freeze/unfreeze", field="change")
    if event is not None and event not in EVENTS:
        raise InvalidInput("must be freeze or unfreeze", field="event")
    if limit_fen is not None:
        s = p.settings
        check_limit(limit_fen, min_fen=s.min_limit_fen, max_fen=s.max_limit_fen)
    if rate is not None:
        rate.check_band()
    if not reason.strip():
        raise InvalidInput("a reason is required", field="reason")
    payload = {
        "customer_id": customer_id,
        "limit_fen": limit_fen,
        "rate_units": None if rate is None else rate.units,
        "event": event,
        "reason": reason.strip()[:200],
    }

    def work(conn: sa.Connection) -> dict[str, Any]:
        _line(conn, customer_id)
        pid = propose(conn, p, op, "line.change", f"line:{customer_id}", payload)
        return {"proposal_id": pid, "status": "pending", **payload}

    return p.transaction(work)


def _line(conn: sa.Connection, customer_id: int) -> Any:
    row = conn.execute(
        sa.select(credit_line).where(credit_line.c.customer_id == customer_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(
            f"customer {customer_id} has no credit line", code="line.not_found", field="customer"
        )
    return row


@on_approve("line.change")
def _apply(
    conn: sa.Connection, p: Platform, payload: dict[str, Any], op: Operator
) -> dict[str, Any]:
    line = _line(conn, payload["customer_id"])
    values: dict[str, Any] = {"updated_at": p.now()}
    if payload["limit_fen"] is not None:
        values["limit_fen"] = payload["limit_fen"]
    if payload["rate_units"] is not None:
        values["rate_units"] = payload["rate_units"]
    if payload["event"] is not None:
        status = line_transition(
            LineStatus(line.status), EVENTS[payload["event"]], open_loans=line.open_loans
        )
        values["status"] = status.value
    conn.execute(
        credit_line.update()
        .where(credit_line.c.customer_id == payload["customer_id"])
        .values(**values)
    )
    return {"line_status": values.get("status", line.status)}
