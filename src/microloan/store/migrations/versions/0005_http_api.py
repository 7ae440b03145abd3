"""the HTTP API: nonces of signed channel-gateway requests, operator sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_nonce",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("channel", "nonce", name=op.f("pk_gateway_nonce")),
    )
    op.create_index("ix_gateway_nonce_seen_at", "gateway_nonce", ["seen_at"])
    op.create_table(
        "operator_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator_id", Id, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operator.operator_id"],
            name=op.f("fk_operator_session_operator_id_operator"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_operator_session")),
    )
    op.create_index("ix_operator_session_operator", "operator_session", ["operator_id"])


def downgrade() -> None:
    op.drop_index("ix_operator_session_operator", table_name="operator_session")
    op.drop_table("operator_session")
    op.drop_index("ix_gateway_nonce_seen_at", table_name="gateway_nonce")
    op.drop_table("gateway_nonce")
