"""Operator sessions (bearer tokens of the API and console) and reading the audit trail.

Only the SHA-256 of a token is stored: a copy of the table lets nobody act as an operator. A
session ends when it expires or is revoked (logout); a deactivated operator's sessions stop
working at once, because every request reads the operator row with the session.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.service.operators import AuthError, Operator, audit
from microloan.service.platform import Platform
from microloan.store.schema import audit_log, operator, operator_session

TOKEN_BYTES = 32
MAX_TOKEN_LEN = 128  # a longer bearer value is no token of ours: refused before hashing
MAX_AUDIT_ROWS = 500


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(at: datetime) -> datetime:
    # SQLite gives back the UTC time without its zone
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def open_session(p: Platform, op: Operator, *, address: str) -> dict[str, Any]:
    """A new session for an authenticated operator; the token is shown once, never stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = p.now()
    expires_at = now + timedelta(hours=p.settings.operator_session_hours)

    def work(conn: sa.Connection) -> None:
        conn.execute(
            operator_session.insert(),
            {
                "token_hash": token_hash(token),
                "operator_id": op.operator_id,
                "created_at": now,
                "expires_at": expires_at,
                "revoked_at": None,
            },
        )
        audit(conn, p, op, "operator.login", f"operator:{op.operator_id}", address=address)

    p.transaction(work)
    return {
        "token": token,
        "token_type": "bearer",
        "expires_at": expires_at.isoformat(),
        "operator": {"username": op.username, "roles": sorted(op.roles)},
    }


def login_failed(p: Platform, username: str, *, address: str) -> None:
    """Record a refused login (the name as typed, cut to the column's width)."""
    p.transaction(
        lambda conn: audit(
            conn, p, None, "operator.login.failed", f"operator:{username}"[:64], address=address
        )
    )


def session_operator(p: Platform, token: str) -> tuple[Operator, datetime]:
    """The operator of a live session and when it expires; one error for every failure."""
    refused = AuthError("the session is unknown, expired or ended", field="authorization")
    if not token or len(token) > MAX_TOKEN_LEN:
        raise refused
    with p.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                operator_session.c.expires_at,
                operator_session.c.revoked_at,
                operator.c.operator_id,
                operator.c.username,
                operator.c.roles,
                operator.c.active,
            )
            .join(operator, operator.c.operator_id == operator_session.c.operator_id)
            .where(operator_session.c.token_hash == token_hash(token))
        ).first()
    if row is None or row.revoked_at is not None or not row.active:
        raise refused
    expires_at = _utc(row.expires_at)
    if expires_at <= _utc(p.now()):
        raise refused
    op = Operator(row.operator_id, row.username, frozenset(row.roles.split(",")))
    return op, expires_at


def close_session(p: Platform, op: Operator, token: str) -> dict[str, Any]:
    """Revoke the session (logout); the row stays, as a record."""

    def work(conn: sa.Connection) -> None:
        conn.execute(
            operator_session.update()
            .where(
                operator_session.c.token_hash == token_hash(token),
                operator_session.c.operator_id == op.operator_id,
                operator_session.c.revoked_at.is_(None),
            )
            .values(revoked_at=p.now())
        )
        audit(conn, p, op, "operator.logout", f"operator:{op.operator_id}")

    p.transaction(work)
    return {"status": "revoked"}


def audit_entries(
    p: Platform,
    *,
    limit: int = 100,
    subject: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The newest lines of the audit log first (``before_id`` pages back)."""
    assert 1 <= limit <= MAX_AUDIT_ROWS
    q = (
        sa.select(audit_log, operator.c.username)
        .outerjoin(operator, operator.c.operator_id == audit_log.c.operator_id)
        .order_by(audit_log.c.audit_id.desc())
        .limit(limit)
    )
    if subject:
        q = q.where(audit_log.c.subject == subject)
    if action:
        q = q.where(audit_log.c.action == action)
    if before_id is not None:
        q = q.where(audit_log.c.audit_id < before_id)
    with p.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [
        {
            "audit_id": r.audit_id,
            "operator_id": r.operator_id,
            "operator": r.username,
            "action": r.action,
            "subject": r.subject,
            "detail": json.loads(r.detail),
            "at": _utc(r.at).isoformat(),
        }
        for r in rows
    ]
