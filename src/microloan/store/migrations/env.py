"""Alembic environment: runs against the engine handed in by ``microloan.store.db``."""

from __future__ import annotations

from alembic import context

from microloan.store.schema import metadata

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
