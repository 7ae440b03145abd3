"""Setting a database up: migrations, the platform book and the clock."""

from __future__ import annotations

import sqlalchemy as sa

from microloan.domain.books import PLATFORM_BOOK
from microloan.service.clock import init_clock
from microloan.service.platform import Platform
from microloan.store.db import current_revision, migrate
from microloan.store.schema import book


def init_db(p: Platform) -> dict[str, str | None]:
    """Bring the schema to the newest migration and seed what every database needs. Idempotent."""
    migrate(p.engine)

    def seed(conn: sa.Connection) -> None:
        if conn.execute(sa.select(book.c.id).where(book.c.code == PLATFORM_BOOK)).first() is None:
            conn.execute(book.insert(), {"code": PLATFORM_BOOK, "name": "平台自营 Platform"})
        init_clock(conn, p.now)

    p.transaction(seed)
    return {
        "database": p.engine.url.render_as_string(hide_password=True),
        "revision": current_revision(p.engine),
    }
