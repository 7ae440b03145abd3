"""Engines and migrations for the embedded default (SQLite file) and PostgreSQL."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


APPLICATION_NAME = "microloan"  # PostgreSQL's application_name of the platform's sessions
_SESSIONS: weakref.WeakKeyDictionary[Engine, set[int]] = weakref.WeakKeyDictionary()


def session_name(url: str | sa.engine.URL) -> str:
    """The ``application_name`` of the platform's sessions on this database: the URL's, else
    "microloan". A process with a role of its own (the payment worker, the end of day) names its
    sessions "<name> <role>", so the end of day can tell customers' sessions from them."""
    name = sa.engine.make_url(url).query.get("application_name", APPLICATION_NAME)
    return name if isinstance(name, str) else name[0]


def make_engine(url: str, *, pool_size: int = 5, role: str | None = None) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    # No pre-ping (it costs a round trip per transaction): a stale connection fails its first
    # statement, the pool drops it, and Platform.transaction retries on a fresh one. The
    # sessions are named (session_name), so that end of day can tell customers' sessions from
    # the worker's, its own and a monitor's (service/eod_pace.py).
    name = _named(url, role)
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
        connect_args={"application_name": name},
    )
    _track_sessions(engine, set())
    return engine


def _named(url: str, role: str | None) -> str:
    return session_name(url) if role is None else f"{session_name(url)} {role}"


def make_read_engine(engine: Engine, *, pool_size: int, role: str | None = None) -> Engine:
    """PostgreSQL: the engine of the platform's reads (``Platform.reading``) and of the
    gateway's nonces, beside ``engine`` on the same database, with sessions named alike and
    counted among ``engine``'s own (``session_pids``).

    Its connections stay in autocommit: no BEGIN and ROLLBACK around a read, and no isolation
    level set at every checkout and reset at every return. They commit asynchronously
    (``synchronous_commit=off``): a read-only statement has nothing to flush, and the one write
    that goes through them, a gateway nonce, may be lost in a crash of the database server if
    it came in the last fraction of a second before it (docs/api.md). Money never moves
    through them."""
    url = engine.url
    read = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
        pool_reset_on_return=None,  # in autocommit there is no transaction to roll back
        isolation_level="AUTOCOMMIT",
        connect_args={
            "application_name": _named(url.render_as_string(hide_password=False), role),
            "options": "-c synchronous_commit=off",
        },
    )
    _track_sessions(read, _SESSIONS.setdefault(engine, set()))
    return read


def _track_sessions(engine: Engine, pids: set[int]) -> None:
    _SESSIONS[engine] = pids

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        pids.add(dbapi_connection.info.backend_pid)


def session_pids(engine: Engine) -> frozenset[int]:
    """PostgreSQL: the server process ids of every session this engine has opened."""
    return frozenset(_SESSIONS.get(engine, ()))


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so writers queue instead of failing mid-way."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # only when migrating: keeps every other command quick

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
