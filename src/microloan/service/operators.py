"""Operators, roles, maker-checker proposals and the audit log.

Every manual review, proposal and approval records the acting operator; a proposal is never
approved by the operator who made it (checked here and by a constraint in the database).
What an approval does is registered per proposal kind (``on_approve``), and runs in the same
transaction as the approval itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from microloan.access.passwords import hash_password, needs_rehash, verify_password
from microloan.errors import InvalidInput, MicroloanError, NotFound, RuleViolation
from microloan.service.platform import Platform
from microloan.store.schema import audit_log, operator, proposal

ROLES = (
    "risk_analyst",  # 风控分析师
    "collections",  # 催收
    "customer_service",  # 客服
    "finance",  # 财务
    "auditor",  # 审计
    "administrator",  # 管理员
)
# who may propose and who may approve each kind of change
PROPOSAL_ROLES: dict[str, tuple[str, ...]] = {
    "model.activate": ("risk_analyst", "administrator"),
    "line.change": ("risk_analyst", "administrator"),
    "loan.write_off": ("finance", "collections", "administrator"),
}


class AuthError(MicroloanError):
    code = "operator.unauthorised"


@dataclass(frozen=True, slots=True)
class Operator:
    operator_id: int
    username: str
    roles: frozenset[str]

    def require(self, *roles: str) -> None:
        if not self.roles.intersection(roles):
            raise AuthError(
                f"operator {self.username} needs one of the roles {', '.join(roles)}",
                code="operator.forbidden",
                field="operator",
            )


Handler = Callable[[sa.Connection, Platform, dict[str, Any], Operator], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}


def on_approve(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def _handler(kind: str) -> Handler:
    """The approval handler of a kind; the modules that register them are loaded on demand."""
    from microloan.service import (  # noqa: F401  (they register handlers)
        line_changes,
        models,
        write_offs,
    )

    return _HANDLERS[kind]


def audit(
    conn: sa.Connection, p: Platform, op: Operator | None, action: str, subject: str, **detail: Any
) -> None:
    """Append one line to the audit log (never updated, never deleted)."""
    conn.execute(
        audit_log.insert(),
        {
            "operator_id": None if op is None else op.operator_id,
            "action": action,
            "subject": subject,
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
            "at": p.now(),
        },
    )


def _parse_roles(roles: list[str]) -> list[str]:
    clean = sorted({r.strip() for r in roles if r.strip()})
    unknown = [r for r in clean if r not in ROLES]
    if unknown or not clean:
        raise InvalidInput(
            f"roles must be among {', '.join(ROLES)}; got {', '.join(unknown) or 'none'}",
            code="operator.role.unknown",
            field="role",
        )
    return clean


def create_operator(
    p: Platform, username: str, password: str, roles: list[str], *, display_name: str = ""
) -> dict[str, Any]:
    username = (username or "").strip()
    if not username.isidentifier() or not 3 <= len(username) <= 40:
        raise InvalidInput("3–40 letters, digits or underscores", field="username")
    clean = _parse_roles(roles)
    stored = hash_password(password)

    def work(conn: sa.Connection) -> dict[str, Any]:
        taken = conn.execute(
            sa.select(operator.c.operator_id).where(operator.c.username == username)
        ).first()
        if taken is not None:
            raise RuleViolation(
                f"operator {username} exists", code="operator.exists", field="username"
            )
        op_id = int(
            conn.execute(
                operator.insert().returning(operator.c.operator_id),
                {
                    "username": username,
                    "display_name": display_name or username,
                    "password_hash": stored,
                    "roles": ",".join(clean),
                    "active": True,
                    "created_at": p.now(),
                },
            ).scalar_one()
        )
        audit(conn, p, None, "operator.create", f"operator:{op_id}", roles=clean)
        return {"operator_id": op_id, "username": username, "roles": clean}

    return p.transaction(work)


def authenticate(p: Platform, username: str, password: str) -> Operator:
    """The active operator with this password; one message for every failure."""

    def work(conn: sa.Connection) -> Operator:
        row = conn.execute(sa.select(operator).where(operator.c.username == username)).first()
        if row is None or not row.active or not verify_password(row.password_hash, password):
            raise AuthError("unknown operator or wrong password", field="operator")
        if needs_rehash(row.password_hash):
            conn.execute(
                operator.update()
                .where(operator.c.operator_id == row.operator_id)
                .values(password_hash=hash_password(password))
            )
        return Operator(row.operator_id, row.username, frozenset(row.roles.split(",")))

    return p.transaction(work)


def list_operators(p: Platform) -> list[dict[str, Any]]:
    with p.engine.connect() as conn:
        rows = conn.execute(sa.select(operator).order_by(operator.c.operator_id)).all()
    return [
        {
            "operator_id": r.operator_id,
            "username": r.username,
            "roles": r.roles.split(","),
            "active": bool(r.active),
        }
        for r in rows
    ]


def propose(
    conn: sa.Connection,
    p: Platform,
    op: Operator,
    kind: str,
    subject: str,
    payload: dict[str, Any],
) -> int:
    """Record a pending change (maker); it takes effect only when another operator approves."""
    op.require(*PROPOSAL_ROLES[kind])
    pending = conn.execute(
        sa.select(proposal.c.proposal_id).where(
            proposal.c.kind == kind, proposal.c.subject == subject, proposal.c.status == "pending"
        )
    ).first()
    if pending is not None:
        raise RuleViolation(
            f"proposal {pending.proposal_id} for {subject} is already pending",
            code="proposal.pending",
            field="subject",
        )
    pid = int(
        conn.execute(
            proposal.insert().returning(proposal.c.proposal_id),
            {
                "kind": kind,
                "subject": subject,
                "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True),
                "status": "pending",
                "proposed_by": op.operator_id,
                "proposed_at": p.now(),
            },
        ).scalar_one()
    )
    audit(conn, p, op, f"{kind}.propose", subject, proposal_id=pid, **payload)
    return pid


def decide(
    p: Platform, op: Operator, proposal_id: int, *, approve: bool, note: str = ""
) -> dict[str, Any]:
    """Approve (checker) or reject a pending proposal; never by the operator who proposed it."""

    def work(conn: sa.Connection) -> dict[str, Any]:
        row = conn.execute(
            sa.select(proposal).where(proposal.c.proposal_id == proposal_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"no proposal {proposal_id}", field="proposal")
        if row.status != "pending":
            raise RuleViolation(
                f"proposal {proposal_id} is already {row.status}",
                code="proposal.decided",
                field="proposal",
            )
        op.require(*PROPOSAL_ROLES[row.kind])
        if row.proposed_by == op.operator_id:
            raise RuleViolation(
                "the operator who proposed a change cannot approve or reject it",
                code="proposal.same_operator",
                field="operator",
            )
        payload = json.loads(row.payload)
        result: dict[str, Any] = {}
        if approve:
            result = _handler(row.kind)(conn, p, {**payload, "proposal_id": proposal_id}, op)
        conn.execute(
            proposal.update()
            .where(proposal.c.proposal_id == proposal_id)
            .values(
                status="approved" if approve else "rejected",
                decided_by=op.operator_id,
                decided_at=p.now(),
                note=note[:200] or None,
            )
        )
        action = "approve" if approve else "reject"
        audit(conn, p, op, f"{row.kind}.{action}", row.subject, proposal_id=proposal_id)
        return {
            "proposal_id": proposal_id,
            "kind": row.kind,
            "subject": row.subject,
            "status": "approved" if approve else "rejected",
            "proposed_by": row.proposed_by,
            "decided_by": op.operator_id,
            **result,
        }

    return p.transaction(work)


def list_proposals(p: Platform, *, status: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(proposal).order_by(proposal.c.proposal_id)
    if status:
        q = q.where(proposal.c.status == status)
    with p.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [
        {
            "proposal_id": r.proposal_id,
            "kind": r.kind,
            "subject": r.subject,
            "payload": json.loads(r.payload),
            "status": r.status,
            "proposed_by": r.proposed_by,
            "decided_by": r.decided_by,
        }
        for r in rows
    ]
