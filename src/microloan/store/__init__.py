"""Persistence: SQLAlchemy Core tables, Alembic migrations, repositories. Never commits itself."""
