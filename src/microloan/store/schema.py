"""The tables. Every table holding a customer's data carries ``customer_id`` so the data can be
distributed by customer; platform tables (clock, books, end-of-day runs) do not belong to one.

Loans are stored as a *snapshot* as of ``closed_through`` (the last business date the end of day
closed for the loan) plus the repayments dated after it; the live state is that snapshot replayed.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Fen = sa.BigInteger
TS = sa.DateTime(timezone=True)

business_clock = sa.Table(
    "business_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("mode", sa.String(8), nullable=False),  # manual | system
    sa.Column("open_date", sa.Date, nullable=False),
    sa.Column("last_closed_date", sa.Date),  # null until the first end of day
)

book = sa.Table(
    "book",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
)

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("customer_id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

credit_line = sa.Table(
    "credit_line",
    metadata,
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), primary_key=True),
    sa.Column("limit_fen", Fen, nullable=False),
    sa.Column("rate_units", Fen, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # active | frozen | closed
    sa.Column("outstanding_principal_fen", Fen, nullable=False),
    sa.Column("pending_principal_fen", Fen, nullable=False),
    sa.Column("open_loans", sa.Integer, nullable=False),
    sa.Column("overdue_blocked", sa.Boolean, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.CheckConstraint("outstanding_principal_fen >= 0", name="outstanding_nonneg"),
    sa.CheckConstraint("open_loans >= 0 AND open_loans <= 20", name="open_loans_range"),
)

loan = sa.Table(
    "loan",
    metadata,
    sa.Column("loan_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("book_id", Id, sa.ForeignKey("book.id"), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | open | closed
    sa.Column("principal_fen", Fen, nullable=False),
    sa.Column("term_months", sa.Integer, nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("rate_units", Fen, nullable=False),
    sa.Column("line_rate_units", Fen, nullable=False),
    sa.Column("drawn_on", sa.Date, nullable=False),
    sa.Column("accepted_at", TS, nullable=False),
    sa.Column("closed_on", sa.Date),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    # live figures, kept by draws and repayments
    sa.Column("principal_outstanding_fen", Fen, nullable=False),
    sa.Column("earliest_unpaid_due", sa.Date),
    # snapshot as of closed_through, kept by the end of day
    sa.Column("closed_through", sa.Date, nullable=False),
    sa.Column("accrued_through", sa.Date, nullable=False),
    sa.Column("period_interest_units", Fen, nullable=False),
    sa.Column("penalty_whole_fen", Fen, nullable=False),
    sa.Column("penalty_rem_units", Fen, nullable=False),
    sa.Column("penalty_paid_fen", Fen, nullable=False),
    sa.Column("interest_booked_fen", Fen, nullable=False),
    sa.Column("penalty_booked_fen", Fen, nullable=False),
    sa.Column("dpd", sa.Integer, nullable=False),
    sa.Index("ix_loan_customer_status", "customer_id", "status"),
    sa.Index("ix_loan_closed_through", "closed_through", "status"),
    sa.Index("ix_loan_drawn_on", "drawn_on"),
)

installment = sa.Table(
    "installment",
    metadata,
    sa.Column("loan_id", Id, sa.ForeignKey("loan.loan_id"), primary_key=True),
    sa.Column("period", sa.Integer, primary_key=True),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("principal_fen", Fen, nullable=False),
    sa.Column("interest_fen", Fen),
    sa.Column("principal_paid_fen", Fen, nullable=False),
    sa.Column("interest_paid_fen", Fen, nullable=False),
)

repayment = sa.Table(
    "repayment",
    metadata,
    sa.Column("repayment_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("loan_id", Id, sa.ForeignKey("loan.loan_id"), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("amount_fen", Fen, nullable=False),
    sa.Column("penalty_fen", Fen, nullable=False),
    sa.Column("interest_fen", Fen, nullable=False),
    sa.Column("principal_fen", Fen, nullable=False),
    sa.Column("prepaid_fen", Fen, nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # borrower | autodebit
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_repayment_loan_date", "loan_id", "business_date"),
    sa.Index("ix_repayment_date", "business_date"),
)

idempotency = sa.Table(
    "idempotency_key",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

journal_entry = sa.Table(
    "journal_entry",
    metadata,
    sa.Column("entry_id", Id, primary_key=True, autoincrement=True),
    sa.Column("book_id", Id, sa.ForeignKey("book.id"), nullable=False),
    sa.Column("customer_id", Id),  # null for entries that sum many customers (accruals)
    sa.Column("loan_id", Id),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(160), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

journal_line = sa.Table(
    "journal_line",
    metadata,
    sa.Column("line_id", Id, primary_key=True, autoincrement=True),
    sa.Column("entry_id", Id, sa.ForeignKey("journal_entry.entry_id"), nullable=False),
    sa.Column("book_id", Id, nullable=False),
    sa.Column("customer_id", Id),
    sa.Column("loan_id", Id),
    sa.Column("account", sa.String(8), nullable=False),
    sa.Column("amount_fen", Fen, nullable=False),  # debit > 0, credit < 0
    sa.Index("ix_journal_line_loan", "loan_id"),
    sa.Index("ix_journal_line_book_account", "book_id", "account"),
)

accrual = sa.Table(
    "accrual",
    metadata,
    sa.Column("loan_id", Id, sa.ForeignKey("loan.loan_id"), primary_key=True),
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("book_id", Id, nullable=False),
    sa.Column("entry_id", Id, sa.ForeignKey("journal_entry.entry_id"), nullable=False),
    sa.Column("interest_fen", Fen, nullable=False),
    sa.Column("penalty_fen", Fen, nullable=False),
    sa.Index("ix_accrual_date", "business_date"),
)

eod_run = sa.Table(
    "eod_run",
    metadata,
    sa.Column("run_id", Id, primary_key=True, autoincrement=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # running | done | shared
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("loans", sa.Integer, nullable=False),
    sa.Column("interest_fen", Fen, nullable=False),
    sa.Column("penalty_fen", Fen, nullable=False),
    sa.Column("overdue_loans", sa.Integer, nullable=False),
    sa.Column("blocked_lines", sa.Integer, nullable=False),
)
