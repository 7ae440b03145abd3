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
    # the end of day's columns as of closed_through (servicing §1, lending rules §7): what the
    # next day's accrual needs without reading installments, and the loan's books
    sa.Column("perf_fen", Fen, nullable=False, server_default="0"),  # principal not yet due
    sa.Column("over_fen", Fen, nullable=False, server_default="0"),  # overdue principal+interest
    sa.Column("next_due", sa.Date),  # due date of the period still accruing
    sa.Column("over_since", sa.Date),  # earliest passed due date with something unpaid
    sa.Column("snap_principal_fen", Fen, nullable=False, server_default="0"),
    sa.Column("interest_recv_fen", Fen, nullable=False, server_default="0"),  # on balance
    sa.Column("penalty_recv_fen", Fen, nullable=False, server_default="0"),
    sa.Column("interest_memo_fen", Fen, nullable=False, server_default="0"),  # off balance
    sa.Column("penalty_memo_fen", Fen, nullable=False, server_default="0"),
    sa.Column("non_accrual", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tier", sa.String(16), nullable=False, server_default="normal"),
    # set by an approved write-off (lending rules §7); the loan stays open and is collected
    sa.Column("written_off_on", sa.Date),
    sa.Index("ix_loan_customer_status", "customer_id", "status"),
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
    # parts taken from off-balance amounts (non-accrual memo, written-off loan): income when paid
    sa.Column("off_interest_fen", Fen, nullable=False, server_default="0"),
    sa.Column("off_penalty_fen", Fen, nullable=False, server_default="0"),
    sa.Column("off_principal_fen", Fen, nullable=False, server_default="0"),
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
    sa.Index("ix_journal_entry_date", "business_date"),
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
    sa.Index("ix_journal_line_entry", "entry_id"),
    sa.Index("ix_journal_line_book_account", "book_id", "account"),
)

# one row per loan and date with something accrued: a million rows a day at volume, so written
# with COPY and without foreign keys (the end of day writes a chunk's loans, records and entry in
# one transaction; ``ledger check`` proves them). The key leads with the date: a day's records
# go at the right-hand end of the index instead of into every leaf page of it, so the day's
# writes (and write-ahead log) do not grow with the history kept; a loan's records are read by
# one probe per date.
accrual = sa.Table(
    "accrual",
    metadata,
    sa.Column("loan_id", Id, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("book_id", Id, nullable=False),
    sa.Column("entry_id", Id, nullable=False),
    sa.Column("interest_fen", Fen, nullable=False),  # on balance (income)
    sa.Column("penalty_fen", Fen, nullable=False),
    sa.Column("off_interest_fen", Fen, nullable=False, server_default="0"),  # memo accounts
    sa.Column("off_penalty_fen", Fen, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("business_date", "loan_id"),
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
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("step", sa.String(24), nullable=False, server_default="accrual"),
    sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("non_accrual_loans", sa.Integer, nullable=False, server_default="0"),
    sa.Column("write_off_candidates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("provision_fen", Fen, nullable=False, server_default="0"),  # change booked
    sa.Column("reminders_due", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reconciled", sa.Boolean),
    sa.Column("mismatches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text),  # JSON: steps with their seconds
)

# one row per end-of-day chunk, written in the chunk's transaction: the day's figures are their
# sum, so a run that crashed half way and was run again still counts every loan exactly once
eod_chunk = sa.Table(
    "eod_chunk",
    metadata,
    sa.Column("chunk_id", Id, primary_key=True, autoincrement=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("book_id", Id, nullable=False),
    sa.Column("figures", sa.Text, nullable=False),  # JSON of integer sums
    sa.Index("ix_eod_chunk_date", "business_date"),
)

# the day's portfolio figures per book (lending rules §7); ratios as exact decimal text
portfolio_day = sa.Table(
    "portfolio_day",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("book_id", Id, primary_key=True),
    sa.Column("figures", sa.Text, nullable=False),  # JSON: sums in fen, counts, ratios
    sa.Column("npl_ratio", sa.String(16), nullable=False),
    sa.Column("provision_coverage", sa.String(16), nullable=False),
    sa.Column("loan_provision_ratio", sa.String(16), nullable=False),
)

# balance of each ledger account per book at the end of each closed date (incremental check)
gl_day = sa.Table(
    "gl_day",
    metadata,
    sa.Column("book_id", Id, primary_key=True),
    sa.Column("account", sa.String(8), primary_key=True),
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("balance_fen", Fen, nullable=False),
)

# every difference the end of day's reconciliations found (loans vs books, rail vs books)
recon_issue = sa.Table(
    "recon_issue",
    metadata,
    sa.Column("issue_id", Id, primary_key=True, autoincrement=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),  # books | loan | rail
    sa.Column("book_id", Id),
    sa.Column("account", sa.String(8)),
    sa.Column("loan_id", Id),
    sa.Column("reference", sa.String(160)),
    sa.Column("expected_fen", Fen),
    sa.Column("actual_fen", Fen),
    sa.Column("detail", sa.String(300), nullable=False),
    sa.Index("ix_recon_issue_date", "business_date"),
)

# an approved write-off (lending rules §7): what left the balance sheet against the allowance
write_off = sa.Table(
    "write_off",
    metadata,
    sa.Column("loan_id", Id, sa.ForeignKey("loan.loan_id"), primary_key=True),
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("principal_fen", Fen, nullable=False),
    sa.Column("interest_fen", Fen, nullable=False),
    sa.Column("penalty_fen", Fen, nullable=False),
    sa.Column("proposal_id", Id, nullable=False),
    sa.Column("entry_id", Id, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_write_off_date", "business_date"),
)

# money through the payment rail (servicing §2): one row per transfer the platform asked for,
# keyed by its idempotency key; ``unknown`` after a timeout until the rail is asked
payment = sa.Table(
    "payment",
    metadata,
    sa.Column("payment_id", Id, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("kind", sa.String(12), nullable=False),  # disburse | debit
    sa.Column("customer_id", Id, nullable=False),
    sa.Column("loan_id", Id),
    sa.Column("amount_fen", Fen, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column(
        "status", sa.String(12), nullable=False
    ),  # queued | sent | unknown | succeeded | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rail_ref", sa.String(64)),
    sa.Column("failure", sa.String(100)),
    sa.Column("requested_at", TS, nullable=False),
    sa.Column("settled_at", TS),
    sa.Index("ix_payment_status", "status"),
    sa.Index("ix_payment_date", "business_date"),
    sa.Index("ix_payment_loan", "loan_id"),
)

# the simulated rail's own books, so that the worker, the command line and the server share one
# rail; a real rail keeps these on its side
sim_rail_transfer = sa.Table(
    "sim_rail_transfer",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("card_ref", sa.String(64), nullable=False),  # keyed hash, never the number
    sa.Column("amount_fen", Fen, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("rail_ref", sa.String(64), nullable=False),
    sa.Column("failure", sa.String(100)),
    sa.Column("value_date", sa.Date, nullable=False),
    sa.Column("at", TS, nullable=False),
)

# --- access: channels, invitations, onboarding (access-and-decisions §1–§2) -------------------
# Personal data (identity number, phone, card number) is stored encrypted (``*_enc``) with a keyed
# hash (``*_hash``, an HMAC blind index) for lookups and uniqueness; never in the clear.

channel = sa.Table(
    "channel",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("name_zh", sa.String(40), nullable=False),
    sa.Column("name_en", sa.String(40), nullable=False),
    sa.Column("daily_invite_quota", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

identity = sa.Table(
    "identity",
    metadata,
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), primary_key=True),
    sa.Column("id_number_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("id_number_enc", sa.Text, nullable=False),
    sa.Column("id_number_masked", sa.String(18), nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("is_male", sa.Boolean, nullable=False),
    sa.Column("phone_hash", sa.String(64)),
    sa.Column("phone_enc", sa.Text),
    sa.Column("phone_masked", sa.String(11)),
    sa.Column("source", sa.String(16), nullable=False),  # form | ocr
    sa.Column("verified_at", TS, nullable=False),
    sa.Index("ix_identity_phone_hash", "phone_hash"),
)

channel_identity = sa.Table(
    "channel_identity",
    metadata,
    sa.Column("channel", sa.String(16), sa.ForeignKey("channel.code"), primary_key=True),
    sa.Column("open_id", sa.String(64), primary_key=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id")),  # null until verified
    sa.Column("referral_code", sa.String(32), unique=True),  # the personal share code
    sa.Column("device_id", sa.String(64)),  # the device it entered on
    sa.Column("created_at", TS, nullable=False),
    sa.Column("linked_at", TS),
    sa.Index("ix_channel_identity_customer", "customer_id"),
    sa.Index("ix_channel_identity_device", "device_id"),
)

invitation_batch = sa.Table(
    "invitation_batch",
    metadata,
    sa.Column("batch_id", Id, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), sa.ForeignKey("channel.code"), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("seed", Fen, nullable=False),
    sa.Column("screened", sa.Integer, nullable=False),
    sa.Column("eligible", sa.Integer, nullable=False),
    sa.Column("invited", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

invitation = sa.Table(
    "invitation",
    metadata,
    sa.Column("invitation_id", Id, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), sa.ForeignKey("channel.code"), nullable=False),
    sa.Column("open_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # whitelist | referral
    sa.Column("status", sa.String(10), nullable=False),  # live | accepted | expired
    sa.Column("batch_id", Id, sa.ForeignKey("invitation_batch.batch_id")),
    sa.Column("referral_code", sa.String(32)),  # the inviter's code, for referrals
    sa.Column("reason", sa.Text, nullable=False),  # JSON: why this user was invited
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index(
        "uq_invitation_live",
        "channel",
        "open_id",
        unique=True,
        sqlite_where=sa.text("status = 'live'"),
        postgresql_where=sa.text("status = 'live'"),
    ),
    sa.Index("ix_invitation_channel_open_id", "channel", "open_id"),
)

referral = sa.Table(
    "referral",
    metadata,
    sa.Column("referral_id", Id, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("invitee_open_id", sa.String(64), nullable=False),
    sa.Column("referral_code", sa.String(32), nullable=False),
    sa.Column("inviter_customer_id", Id),  # null while the inviter is not yet a customer
    sa.Column("invitee_customer_id", Id),
    sa.Column("campaign", sa.String(32), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | rewarded | no_reward
    sa.Column("outcome", sa.String(40)),  # why no reward, or the reward rule applied
    sa.Column("created_at", TS, nullable=False),
    sa.Column("settled_at", TS),
    sa.UniqueConstraint("channel", "invitee_open_id", name="uq_referral_invitee"),
    sa.Index("ix_referral_code", "referral_code"),
    sa.Index("ix_referral_invitee_customer", "invitee_customer_id"),
)

reward = sa.Table(
    "reward",
    metadata,
    sa.Column("reward_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("referral_id", Id, sa.ForeignKey("referral.referral_id"), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),  # inviter | invitee
    sa.Column("campaign", sa.String(32), nullable=False),
    sa.Column("amount_fen", Fen, nullable=False),
    sa.Column("entry_id", Id, sa.ForeignKey("journal_entry.entry_id"), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("referral_id", "role", name="uq_reward_referral_role"),
    sa.Index("ix_reward_customer_campaign", "customer_id", "campaign"),
)

bank_card = sa.Table(
    "bank_card",
    metadata,
    sa.Column("card_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("card_hash", sa.String(64), nullable=False),
    sa.Column("card_enc", sa.Text, nullable=False),
    sa.Column("card_masked", sa.String(19), nullable=False),
    sa.Column("bank_code", sa.String(16), nullable=False),
    sa.Column("card_type", sa.String(8), nullable=False),  # debit | credit
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # bound | unbound
    sa.Column("verified_at", TS, nullable=False),
    sa.Column("unbound_at", TS),
    sa.Index("ix_bank_card_customer", "customer_id"),
    sa.Index("ix_bank_card_hash", "card_hash"),
)

consent = sa.Table(
    "consent",
    metadata,
    sa.Column("consent_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("granted_at", TS, nullable=False),
    sa.Column("withdrawn_at", TS),
    sa.Index("ix_consent_customer_kind", "customer_id", "kind"),
)

onboarding_step = sa.Table(
    "onboarding_step",
    metadata,
    sa.Column("step_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("step", sa.String(24), nullable=False),
    sa.Column("source", sa.String(24), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON, masked
    sa.Column("at", TS, nullable=False),
    sa.Index("ix_onboarding_step_customer", "customer_id"),
)

blocked_list = sa.Table(
    "blocked_list",
    metadata,
    sa.Column("kind", sa.String(12), primary_key=True),  # id_number | phone | card | device
    sa.Column("value_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("added_at", TS, nullable=False),
)

# --- operators, maker-checker, audit ------------------------------------------------------------

operator = sa.Table(
    "operator",
    metadata,
    sa.Column("operator_id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(40), nullable=False, unique=True),
    sa.Column("display_name", sa.String(60), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("roles", sa.String(200), nullable=False),  # comma-separated role codes
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

proposal = sa.Table(
    "proposal",
    metadata,
    sa.Column("proposal_id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(24), nullable=False),  # model.activate | line.change | …
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("status", sa.String(10), nullable=False),  # pending | approved | rejected
    sa.Column("proposed_by", Id, sa.ForeignKey("operator.operator_id"), nullable=False),
    sa.Column("proposed_at", TS, nullable=False),
    sa.Column("decided_by", Id, sa.ForeignKey("operator.operator_id")),
    sa.Column("decided_at", TS),
    sa.Column("note", sa.String(200)),
    sa.CheckConstraint("decided_by IS NULL OR decided_by <> proposed_by", name="two_people"),
    sa.Index("ix_proposal_status", "status"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("audit_id", Id, primary_key=True, autoincrement=True),
    sa.Column("operator_id", Id, sa.ForeignKey("operator.operator_id")),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON, masked
    sa.Column("at", TS, nullable=False),
    sa.Index("ix_audit_log_subject", "subject"),
)

# --- the HTTP API (issue 5) ----------------------------------------------------------------------

# nonces of signed channel-gateway requests seen within the signature window: a replay is refused
gateway_nonce = sa.Table(
    "gateway_nonce",
    metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("seen_at", TS, nullable=False),
    sa.Index("ix_gateway_nonce_seen_at", "seen_at"),
)

# operator sessions of the API and console: only a hash of the bearer token is kept
operator_session = sa.Table(
    "operator_session",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("operator_id", Id, sa.ForeignKey("operator.operator_id"), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
    sa.Index("ix_operator_session_operator", "operator_id"),
)

# --- decisions and models (access-and-decisions §3–§4) ------------------------------------------

model_version = sa.Table(
    "model_version",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16)),  # null: serves every channel without its own
    sa.Column("artifact", sa.Text, nullable=False),  # the scorecard JSON, as trained
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # registered | active | retired
    sa.Column("registered_by", Id, sa.ForeignKey("operator.operator_id")),
    sa.Column("registered_at", TS, nullable=False),
    sa.Column("activated_at", TS),
    sa.Column("proposal_id", Id, sa.ForeignKey("proposal.proposal_id")),
)

decision = sa.Table(
    "decision",
    metadata,
    sa.Column("decision_id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # apply | rescore
    sa.Column("outcome", sa.String(10), nullable=False),  # approved | declined | review
    sa.Column("grade", sa.String(2)),
    sa.Column("score", sa.Integer),
    sa.Column("pd_ppm", sa.Integer),  # probability of default in parts per million
    sa.Column("limit_fen", Fen),
    sa.Column("rate_units", Fen),
    sa.Column("model_version", sa.String(64)),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list of reason codes
    sa.Column("record", sa.Text, nullable=False),  # JSON: inputs, points, signals, policy
    sa.Column("device_id", sa.String(64)),
    sa.Column("lat_e6", sa.Integer),
    sa.Column("lon_e6", sa.Integer),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_decision_customer", "customer_id", "created_at"),
    sa.Index("ix_decision_device", "device_id", "created_at"),
)

review_case = sa.Table(
    "review_case",
    metadata,
    sa.Column("case_id", Id, primary_key=True, autoincrement=True),
    sa.Column("decision_id", Id, sa.ForeignKey("decision.decision_id"), nullable=False),
    sa.Column("customer_id", Id, sa.ForeignKey("customer.customer_id"), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # open | approved | declined
    sa.Column("signals", sa.Text, nullable=False),  # JSON: why it was sent to review
    sa.Column("opened_at", TS, nullable=False),
    sa.Column("decided_by", Id, sa.ForeignKey("operator.operator_id")),
    sa.Column("decided_at", TS),
    sa.Column("note", sa.String(200)),
    sa.Index("ix_review_case_status", "status"),
)
