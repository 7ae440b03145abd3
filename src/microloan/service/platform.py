"""The platform handle: an engine, the settings and the clock, shared by every use case."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from microloan.domain.line import DrawPolicy
from microloan.errors import IdempotencyConflict, InvalidInput
from microloan.service.clock import Now, system_now
from microloan.settings import Settings
from microloan.store.db import make_engine
from microloan.store.schema import idempotency

T = TypeVar("T")
MAX_KEY_LEN = 128


@dataclass
class Platform:
    engine: Engine
    settings: Settings = field(default_factory=Settings)
    now: Now = system_now

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        now: Now = system_now,
        settings: Settings | None = None,
        pool_size: int = 5,
    ) -> Platform:
        settings = settings or Settings()
        engine = make_engine(url or settings.database_url, pool_size=pool_size)
        return cls(engine, settings, now)

    @property
    def policy(self) -> DrawPolicy:
        s = self.settings
        return DrawPolicy(tuple(s.terms), s.min_draw_fen, s.max_open_loans)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def transaction(self, work: Callable[[sa.Connection], T], *, retries: int = 5) -> T:
        """Run ``work`` in one transaction, retrying serialisation failures and key races."""
        for attempt in range(retries):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                if attempt == retries - 1 or not _retryable(exc):
                    raise
        raise AssertionError("unreachable")


def _retryable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(
        s in text
        for s in (
            "idempotency_key",
            "deadlock",
            "could not serialize",
            "database is locked",
            "unique constraint failed: idempotency",
        )
    )


def request_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def check_key(key: str) -> str:
    key = (key or "").strip()
    if not key or len(key) > MAX_KEY_LEN:
        raise InvalidInput(
            f"an idempotency key of 1–{MAX_KEY_LEN} characters is required", field="key"
        )
    return key


def replayed(conn: sa.Connection, key: str, operation: str, digest: str) -> Any | None:
    """The stored answer for a key already used by the same request; refuses a different one."""
    row = conn.execute(
        sa.select(
            idempotency.c.operation, idempotency.c.request_hash, idempotency.c.response
        ).where(idempotency.c.key == key)
    ).one_or_none()
    if row is None:
        return None
    return replay_answer(key, operation, digest, row.operation, row.request_hash, row.response)


def remember(
    conn: sa.Connection,
    key: str,
    customer_id: int,
    operation: str,
    digest: str,
    response: Any,
    at: datetime,
) -> None:
    conn.execute(
        idempotency.insert(),
        {
            "key": key,
            "customer_id": customer_id,
            "operation": operation,
            "request_hash": digest,
            "response": json.dumps(response, sort_keys=True),
            "created_at": at,
        },
    )


def key_columns(key: str) -> list[sa.Label[Any]]:
    """A stored key's request and answer as scalar subqueries, to ride along with a query."""
    where = idempotency.c.key == key
    return [
        sa.select(idempotency.c.operation).where(where).scalar_subquery().label("key_operation"),
        sa.select(idempotency.c.request_hash).where(where).scalar_subquery().label("key_hash"),
        sa.select(idempotency.c.response).where(where).scalar_subquery().label("key_response"),
    ]


def replay_answer(
    key: str,
    operation: str,
    digest: str,
    stored_operation: str | None,
    stored_hash: str | None,
    response: str | None,
) -> Any | None:
    """The stored answer for a key used by the same request; refuses a different request."""
    if stored_operation is None or response is None:
        return None
    if stored_operation != operation or stored_hash != digest:
        raise IdempotencyConflict(
            f"key {key!r} was already used for a different {stored_operation} request",
            field="key",
        )
    return json.loads(response)
