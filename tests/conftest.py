"""Fixtures shared by every test directory: the wall clock, PostgreSQL, migrated templates.

PostgreSQL comes from ``MICROLOAN_TEST_POSTGRES_URL`` (an admin URL whose database may create
others; default ``postgresql://postgres@127.0.0.1:5432/postgres``). When no server answers, the
tests that need it are skipped with the reason shown, unless ``MICROLOAN_REQUIRE_POSTGRES=1``
makes them fail instead (CI sets it).

Migrating a database takes long next to one test, so each session migrates one SQLite file and
one PostgreSQL template database once; a test gets a copy (``CREATE DATABASE … TEMPLATE``).
Every name carries a random suffix, so parallel workers (``pytest -n``) never share one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from microloan.service import admin
from microloan.service.platform import Platform

PG_URL_ENV = "MICROLOAN_TEST_POSTGRES_URL"
PG_REQUIRED_ENV = "MICROLOAN_REQUIRE_POSTGRES"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_CONNECT_TIMEOUT_S = 3

# Personal data is encrypted with a configured key; the tests (and the commands they start) use
# this fixed one, so no test writes a key file into the checkout.
TEST_DATA_KEY = "dGVzdC1vbmx5LWRhdGEta2V5LW5vdC1mb3ItdXNlLTE="
os.environ.setdefault("MICROLOAN_DATA_KEY", TEST_DATA_KEY)

# Every test's wall clock: 09:00 in Shanghai on the first business date the tests use.
FIXED_NOW = datetime(2026, 1, 31, 1, 0, tzinfo=UTC)


def fixed_now() -> datetime:
    return FIXED_NOW


@pytest.fixture(scope="session")
def wall_clock() -> Callable[[], datetime]:
    """The ``now`` every test platform gets: fixed, so created_at columns are reproducible."""
    return fixed_now


@dataclass(frozen=True)
class PostgresServer:
    """A reachable server, or the reason it is not (``admin_url`` is then ``None``)."""

    admin_url: str | None
    reason: str

    def require(self) -> str:
        """The admin URL; skips the test (or fails it, when PostgreSQL is required)."""
        if self.admin_url is not None:
            return self.admin_url
        if os.environ.get(PG_REQUIRED_ENV) == "1":
            pytest.fail(f"{PG_REQUIRED_ENV}=1 but {self.reason}", pytrace=False)
        pytest.skip(self.reason)

    def url_for(self, database: str) -> str:
        assert self.admin_url is not None
        url = sa.engine.make_url(self.admin_url).set(database=database)
        return url.render_as_string(hide_password=False)

    def execute(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        assert self.admin_url is not None
        with psycopg.connect(
            _libpq_url(self.admin_url), autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT_S
        ) as conn:
            conn.execute(statement)  # type: ignore[arg-type]


def _libpq_url(url: str) -> str:
    """libpq understands ``postgresql://`` but not SQLAlchemy's ``postgresql+psycopg://``."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    import psycopg

    url = os.environ.get(PG_URL_ENV) or DEFAULT_PG_ADMIN_URL
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=PG_CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        return PostgresServer(
            None,
            f"PostgreSQL at {shown} is unreachable ({first}); "
            f"set {PG_URL_ENV} to test on PostgreSQL",
        )
    return PostgresServer(url, "")


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A database migrated and seeded once per session, copied by every PostgreSQL test."""
    postgres_server.require()
    name = f"microloan_tmpl_{uuid.uuid4().hex[:8]}"
    postgres_server.execute(f'CREATE DATABASE "{name}"')
    try:
        p = Platform.connect(postgres_server.url_for(name), now=fixed_now, pool_size=1)
        admin.init_db(p)
        p.dispose()  # a template must have no connection when it is copied
        yield name
    finally:
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class SqliteTemplate:
    path: Path

    def copy_to(self, target: Path) -> str:
        """Copy the migrated file to ``target``; the copy's URL."""
        shutil.copyfile(self.path, target)
        wal = Path(f"{self.path}-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(f"{target}-wal"))
        return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    """A SQLite file migrated and seeded once per session; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "microloan.sqlite3"
    p = Platform.connect(f"sqlite:///{path}", now=fixed_now)
    admin.init_db(p)
    p.dispose()  # the last connection to close checkpoints the WAL into the file
    return SqliteTemplate(path)
