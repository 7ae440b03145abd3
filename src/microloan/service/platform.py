"""The platform handle: an engine, the settings and the clock, shared by every use case."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from microloan.access.crypto import Vault, load_master_key
from microloan.domain.line import DrawPolicy
from microloan.errors import IdempotencyConflict, InvalidInput
from microloan.service.clock import Now, system_now
from microloan.settings import Settings

if TYPE_CHECKING:
    from microloan.providers.rail import PaymentRailPort
    from microloan.service.providers import Providers
from microloan.store.db import make_engine, make_read_engine
from microloan.store.prepared import Prepared
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
        role: str | None = None,
    ) -> Platform:
        """``role``: what this process is besides serving customers ("worker", "eod"), named
        in its database sessions (``store.db.session_name``)."""
        settings = settings or Settings()
        engine = make_engine(url or settings.database_url, pool_size=pool_size, role=role)
        p = cls(engine, settings, now)
        if p.is_postgres:
            p.reader = make_read_engine(engine, pool_size=pool_size, role=role)
        return p

    # PostgreSQL: the engine ``reading`` (and the gateway's nonce) use, connections kept in
    # autocommit (store.db.make_read_engine); without one, reads take ``engine``'s connections
    reader: Engine | None = field(default=None, repr=False)

    def dispose(self) -> None:
        """Close every pooled connection (both engines)."""
        if self.reader is not None:
            self.reader.dispose()
        self.engine.dispose()

    _vault: Vault | None = field(default=None, repr=False)
    _providers: Providers | None = field(default=None, repr=False)

    @property
    def providers(self) -> Providers:
        """The decision's providers; by default the simulated ones over the population file."""
        if self._providers is None:
            from microloan.service.providers import simulated

            self._providers = simulated(self.settings.population_path)
        return self._providers

    def warm_providers(self) -> None:
        """The default providers now, their lookups built: a server process, before its first
        requests (otherwise the first applications each build them at once and hold one
        another for most of a second); nothing when others were chosen or there is no
        population file."""
        from pathlib import Path

        from microloan.service.providers import simulated

        path = self.settings.population_path
        if self._providers is None and Path(path).is_file():
            self._providers = simulated(path, warm=True)

    def use_providers(self, providers: Providers) -> None:
        self._providers = providers

    _rail: PaymentRailPort | None = field(default=None, repr=False)

    @property
    def rail(self) -> PaymentRailPort:
        """The payment rail; by default the simulated one on this database (faults from the
        settings), shared by every process that uses the database."""
        if self._rail is None:
            from microloan.service.payments import simulated_rail

            self._rail = simulated_rail(self)
        return self._rail

    def use_rail(self, rail: PaymentRailPort) -> None:
        self._rail = rail

    @property
    def vault(self) -> Vault:
        """The personal-data keys, loaded on first use (the SQLite default may create its file)."""
        if self._vault is None:
            s = self.settings
            master = load_master_key(
                s.data_key, s.data_key_file, may_create=self.engine.dialect.name == "sqlite"
            )
            self._vault = Vault.from_master(master)
        return self._vault

    @property
    def policy(self) -> DrawPolicy:
        s = self.settings
        return DrawPolicy(tuple(s.terms), s.min_draw_fen, s.max_open_loans)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def holding_reads(self) -> Iterator[None]:
        """PostgreSQL: one reading connection for every ``reading`` until the block ends (a
        request's nonce and reads, in its worker thread), checked out and back once. A no-op
        without a reading engine: on SQLite a read holds the database's write lock."""
        if self.reader is None or _HELD.get() is not None:
            yield
            return
        with self.reader.connect() as conn:
            token = _HELD.set((self, conn))
            try:
                yield
            finally:
                _HELD.reset(token)

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads. On PostgreSQL it runs without a transaction (AUTOCOMMIT):
        under READ COMMITTED each statement reads its own snapshot whether in a transaction or
        not, so nothing changes for the reader, but there is no BEGIN and ROLLBACK to wait for,
        and psycopg keeps its prepared statements (it drops them all at every rollback).
        Nothing written through it is rolled back, and it commits asynchronously: use
        ``transaction`` to write."""
        if self.reader is not None:
            held = _HELD.get()
            if held is not None and held[0] is self:
                yield held[1]
                return
            with self.reader.connect() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            if self.is_postgres:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

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


# the reading connection a block holds (Platform.holding_reads), by thread and task
_HELD: contextvars.ContextVar[tuple[Platform, sa.Connection] | None] = contextvars.ContextVar(
    "microloan_held_reads", default=None
)


def _retryable(exc: Exception) -> bool:
    if getattr(exc, "connection_invalidated", False):
        return True  # a stale pooled connection: the pool has dropped it, try a fresh one
    text = str(exc).lower()
    return any(
        s in text
        for s in (
            "deadlock",
            "could not serialize",
            "database is locked",
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


_KEY_ROW = Prepared(
    sa.select(idempotency.c.operation, idempotency.c.request_hash, idempotency.c.response).where(
        idempotency.c.key == sa.bindparam("key")
    )
)


def replayed(conn: sa.Connection, key: str, operation: str, digest: str) -> Any | None:
    """The stored answer for a key already used by the same request; refuses a different one."""
    row = _KEY_ROW.one_or_none(conn, {"key": key})
    if row is None:
        return None
    return replay_answer(key, operation, digest, row.operation, row.request_hash, row.response)


def replay_answer(
    key: str,
    operation: str,
    digest: str,
    stored_operation: str | None,
    stored_hash: str | None,
    response: str | None,
) -> Any | None:
    """The stored answer for a key used by the same request; refuses a different request."""
    if stored_operation is None or not response:
        return None
    if stored_operation != operation or stored_hash != digest:
        raise IdempotencyConflict(
            f"key {key!r} was already used for a different {stored_operation} request",
            field="key",
        )
    return json.loads(response)


def claim_key(
    conn: sa.Connection,
    key: str,
    customer_id: int,
    operation: str,
    digest: str,
    at: datetime,
) -> Any | None:
    """Claim an idempotency key before doing anything else; None when this request owns it.

    A concurrent request with the same key waits on the key's unique index until the first
    commits, then finds the stored answer (replayed) or a different request (refused): the
    second of two racing retries never runs the use case against state the first one changed.
    """
    claimed = _claim_statement(conn.dialect.name).first(
        conn,
        {
            "key": key,
            "customer_id": customer_id,
            "operation": operation,
            "request_hash": digest,
            "response": "",
            "created_at": at,
        },
    )
    if claimed is not None:
        return None
    answer = replayed(conn, key, operation, digest)
    if answer is None:
        raise IdempotencyConflict(f"key {key!r} is in use by a request in flight", field="key")
    return answer


def answer_key(conn: sa.Connection, key: str, response: Any) -> None:
    """Store the answer of the request that claimed ``key`` (same transaction as its work)."""
    _ANSWER_KEY.run(conn, {"k": key, "response": json.dumps(response, sort_keys=True)})


_ANSWER_KEY = Prepared(
    idempotency.update()
    .where(idempotency.c.key == sa.bindparam("k"))
    .values(response=sa.bindparam("response"))
)


@functools.cache
def _claim_statement(dialect: str) -> Prepared:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return Prepared(
        insert(idempotency)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(idempotency.c.key)
    )
