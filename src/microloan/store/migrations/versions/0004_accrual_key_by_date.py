"""accrual records keyed by date first: a day's records go at the end of the index, so the end
of day writes no more index pages (and write-ahead log) as the history grows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accrual", schema=None) as batch_op:
        batch_op.drop_constraint("pk_accrual", type_="primary")
        batch_op.create_primary_key("pk_accrual", ["business_date", "loan_id"])


def downgrade() -> None:
    with op.batch_alter_table("accrual", schema=None) as batch_op:
        batch_op.drop_constraint("pk_accrual", type_="primary")
        batch_op.create_primary_key("pk_accrual", ["loan_id", "business_date"])
