"""Closing one business date for many loans at once, as columns (servicing §1).

Most loans have a quiet day: no repayment, no due date, no write-off. Their day is a few integer
operations on the end of day's per-loan columns (``store.loans.eod_columns``): interest on the
performing principal, penalty on the overdue amount, both half up from exact accumulators, then
the receivables on or off balance. That is :func:`close_quiet`. A loan with an event that day is
closed one at a time by the domain (``eod._close_eventful``), and both give the same columns,
from which :func:`classify_book` then makes tiers, allowances and the day's figures.

The domain (``domain.loan.advance``, ``domain.day_books.close_day``) stays the definition: a
property test checks :func:`close_quiet` against it loan by loan.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from microloan.domain.classification import NON_ACCRUAL_DPD, WRITE_OFF_DPD, Tier
from microloan.domain.rates import PENALTY_CAP_UNITS, PENALTY_SCALE, RATE_SCALE
from microloan.servicing.portfolio import classify

I64 = pl.Int64
# the columns a chunk is read with, and their types
INPUT = {
    "loan_id": I64,
    "customer_id": I64,
    "book_id": I64,
    "rate_units": I64,
    "accrued_through": pl.Date,
    "next_due": pl.Date,
    "over_since": pl.Date,
    "perf_fen": I64,
    "over_fen": I64,
    "snap_principal_fen": I64,
    "period_interest_units": I64,
    "penalty_whole_fen": I64,
    "penalty_rem_units": I64,
    "penalty_paid_fen": I64,
    "interest_booked_fen": I64,
    "penalty_booked_fen": I64,
    "interest_recv_fen": I64,
    "penalty_recv_fen": I64,
    "interest_memo_fen": I64,
    "penalty_memo_fen": I64,
    "non_accrual": pl.Boolean,
    "tier": pl.String,
    "written_off_on": pl.Date,
}
# the columns a closed loan is written back with (the loan row), and the day's accrual record
OUTPUT = {
    "loan_id": I64,
    "customer_id": I64,
    "book_id": I64,
    "accrued_through": pl.Date,
    "period_interest_units": I64,
    "penalty_whole_fen": I64,
    "penalty_rem_units": I64,
    "penalty_paid_fen": I64,
    "interest_booked_fen": I64,
    "penalty_booked_fen": I64,
    "dpd": I64,
    "perf_fen": I64,
    "over_fen": I64,
    "next_due": pl.Date,
    "over_since": pl.Date,
    "snap_principal_fen": I64,
    "interest_recv_fen": I64,
    "penalty_recv_fen": I64,
    "interest_memo_fen": I64,
    "penalty_memo_fen": I64,
    "non_accrual": pl.Boolean,
    "written_off": pl.Boolean,
    "written_off_on": pl.Date,
    "tier": pl.String,
    # the day's accrual record
    "acc_interest_fen": I64,
    "acc_penalty_fen": I64,
    "acc_off_interest_fen": I64,
    "acc_off_penalty_fen": I64,
}


def _half_up(units: pl.Expr, scale: int) -> pl.Expr:
    return (2 * units + scale) // (2 * scale)


def close_quiet(loans: pl.DataFrame, d: date) -> pl.DataFrame:
    """Close ``d`` for loans with no event that day: no repayment dated ``d``, no due date on
    ``d``, no write-off approved on ``d`` (the caller routes those to the domain)."""
    c = pl.col
    days = (pl.lit(d) - c("accrued_through")).dt.total_days().clip(0, 1)
    penalty_rate = pl.min_horizontal(9 * c("rate_units"), pl.lit(PENALTY_CAP_UNITS, I64))
    rem = c("penalty_rem_units") + c("over_fen") * penalty_rate * days
    off = c("non_accrual") | c("written_off")
    out = (
        loans.with_columns(
            (pl.col("written_off_on").is_not_null() & (pl.col("written_off_on") <= d)).alias(
                "written_off"
            ),
            (c("period_interest_units") + c("perf_fen") * c("rate_units") * days).alias("piu2"),
            (c("penalty_whole_fen") + rem // PENALTY_SCALE).alias("whole2"),
            (rem % PENALTY_SCALE).alias("rem2"),
        )
        .with_columns(
            (
                _half_up(c("piu2"), RATE_SCALE) - _half_up(c("period_interest_units"), RATE_SCALE)
            ).alias("day_i"),
            (
                c("whole2")
                + (2 * c("rem2") >= PENALTY_SCALE).cast(I64)
                - c("penalty_whole_fen")
                - (2 * c("penalty_rem_units") >= PENALTY_SCALE).cast(I64)
            ).alias("day_p"),
        )
        .with_columns(
            pl.when(off).then(0).otherwise(c("day_i")).alias("acc_interest_fen"),
            pl.when(off).then(0).otherwise(c("day_p")).alias("acc_penalty_fen"),
            pl.when(off).then(c("day_i")).otherwise(0).alias("acc_off_interest_fen"),
            pl.when(off).then(c("day_p")).otherwise(0).alias("acc_off_penalty_fen"),
            pl.when(c("over_since").is_null())
            .then(0)
            .otherwise((pl.lit(d) - c("over_since")).dt.total_days())
            .cast(I64)
            .alias("dpd"),
        )
        .with_columns(
            pl.lit(d).alias("accrued_through"),
            c("piu2").alias("period_interest_units"),
            c("whole2").alias("penalty_whole_fen"),
            c("rem2").alias("penalty_rem_units"),
            (c("interest_booked_fen") + c("day_i")).alias("interest_booked_fen"),
            (c("penalty_booked_fen") + c("day_p")).alias("penalty_booked_fen"),
            (c("interest_recv_fen") + c("acc_interest_fen")).alias("interest_recv_fen"),
            (c("penalty_recv_fen") + c("acc_penalty_fen")).alias("penalty_recv_fen"),
            (c("interest_memo_fen") + c("acc_off_interest_fen")).alias("interest_memo_fen"),
            (c("penalty_memo_fen") + c("acc_off_penalty_fen")).alias("penalty_memo_fen"),
            (c("dpd") >= NON_ACCRUAL_DPD).alias("non_accrual"),
        )
    )
    return out.select(pl.col(k).cast(t) for k, t in OUTPUT.items())


# the installment falling due on the day, for each quiet loan with a due date that day
DUE_INPUT = {
    "loan_id": I64,
    "period": I64,
    "principal_left_fen": I64,
    "interest_paid_fen": I64,
    "following_due": pl.Date,  # due date of the next installment (null after the last)
}


def close_due(loans: pl.DataFrame, due: pl.DataFrame, d: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Close ``d`` for quiet loans whose open period falls due on ``d``: the day as for any
    quiet loan, then the period's interest is fixed (round half up of its accumulator), and from
    the next day what is left of the installment is overdue. Returns the closed loans and the
    installments' fixed interest (``loan_id``, ``period``, ``interest_fen``)."""
    c = pl.col
    closed = close_quiet(loans, d).join(due, on="loan_id", how="left", validate="1:1")
    assert closed["period"].null_count() == 0, "a loan due today lacks its installment"
    fixed = _half_up(c("period_interest_units"), RATE_SCALE)
    owed = c("principal_left_fen") + c("fixed") - c("interest_paid_fen")
    out = closed.with_columns(fixed.alias("fixed")).with_columns(
        pl.lit(0, I64).alias("period_interest_units"),
        (c("perf_fen") - c("principal_left_fen")).alias("perf_fen"),
        (c("over_fen") + owed).alias("over_fen"),
        c("following_due").alias("next_due"),
        pl.when(c("over_since").is_null() & (owed > 0))
        .then(pl.lit(d))
        .otherwise(c("over_since"))
        .alias("over_since"),
    )
    installments = out.select("loan_id", "period", c("fixed").alias("interest_fen"))
    return out.select(pl.col(k).cast(t) for k, t in OUTPUT.items()), installments


def output_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Loans closed one at a time, as the same columns as :func:`close_quiet`."""
    return pl.DataFrame(rows, schema=OUTPUT, orient="row")


ACCRUAL_KEYS = ("loans", "interest_fen", "penalty_fen", "off_interest_fen", "off_penalty_fen")
BOOK_KEYS = (
    "overdue_loans",
    "non_accrual_loans",
    "write_off_candidates",
    "written_off_loans",
    "balance_fen",
    "npl_fen",
    "allowance_fen",
    "recv_interest_fen",
    "recv_penalty_fen",
    "memo_interest_fen",
    "memo_penalty_fen",
    "written_off_principal_fen",
    *(f"{t.value}_{what}" for t in Tier for what in ("loans", "principal_fen", "allowance_fen")),
)
FIGURE_KEYS = ACCRUAL_KEYS + BOOK_KEYS
# the columns the day's classification reads back from the closed loans
CLASSIFY_INPUT = {
    "loan_id": I64,
    "customer_id": I64,
    "book_id": I64,
    "dpd": I64,
    "snap_principal_fen": I64,
    "interest_recv_fen": I64,
    "penalty_recv_fen": I64,
    "interest_memo_fen": I64,
    "penalty_memo_fen": I64,
    "written_off_on": pl.Date,
    "tier": pl.String,
}


def chunk_figures(closed: pl.DataFrame) -> dict[int, dict[str, int]]:
    """A chunk's loans and accruals per book (what only the chunk knows)."""
    c = pl.col
    per_book = closed.group_by("book_id").agg(
        pl.len().alias("loans"),
        c("acc_interest_fen").sum().alias("interest_fen"),
        c("acc_penalty_fen").sum().alias("penalty_fen"),
        c("acc_off_interest_fen").sum().alias("off_interest_fen"),
        c("acc_off_penalty_fen").sum().alias("off_penalty_fen"),
    )
    return {
        int(row["book_id"]): {k: int(row[k] or 0) for k in ACCRUAL_KEYS}
        for row in per_book.to_dicts()
    }


def classify_book(loans: pl.DataFrame, d: date) -> tuple[pl.DataFrame, dict[int, dict[str, int]]]:
    """Every loan closed for ``d``: its borrower's tier (the worst DPD of their loans), the
    allowance it requires on balance, and the figures per book.

    A written-off loan still counts for its borrower's tier (it is still owed and collected)
    but carries no balance and no allowance."""
    c = pl.col
    written_off = c("written_off_on").is_not_null() & (c("written_off_on") <= d)
    frame = loans.rename({"tier": "old_tier"}).with_columns(written_off.alias("written_off"))
    on_balance = ~c("written_off")
    frame = frame.with_columns(
        pl.when(on_balance).then(c("snap_principal_fen")).otherwise(0).alias("principal_fen"),
        pl.when(on_balance).then(c("interest_recv_fen")).otherwise(0).alias("interest_fen"),
        pl.when(on_balance).then(c("penalty_recv_fen")).otherwise(0).alias("penalty_fen"),
    )
    classified = classify(frame)
    npl = [t.value for t in Tier if t.is_npl]
    aggs = [
        (c("dpd") > 0).sum().alias("overdue_loans"),
        c("non_accrual").sum().alias("non_accrual_loans"),
        ((c("dpd") >= WRITE_OFF_DPD) & on_balance).sum().alias("write_off_candidates"),
        c("written_off").sum().alias("written_off_loans"),
        c("principal_fen").sum().alias("balance_fen"),
        c("principal_fen").filter(c("tier").is_in(npl)).sum().alias("npl_fen"),
        c("allowance_fen").sum().alias("allowance_fen"),
        c("interest_fen").sum().alias("recv_interest_fen"),
        c("penalty_fen").sum().alias("recv_penalty_fen"),
        c("interest_memo_fen").sum().alias("memo_interest_fen"),
        c("penalty_memo_fen").sum().alias("memo_penalty_fen"),
        c("snap_principal_fen").filter(c("written_off")).sum().alias("written_off_principal_fen"),
    ]
    for t in Tier:
        mine = c("tier") == t.value
        aggs += [
            mine.sum().alias(f"{t.value}_loans"),
            c("principal_fen").filter(mine).sum().alias(f"{t.value}_principal_fen"),
            c("allowance_fen").filter(mine).sum().alias(f"{t.value}_allowance_fen"),
        ]
    per_book = classified.group_by("book_id").agg(aggs)
    figures = {
        int(row["book_id"]): {k: int(row[k] or 0) for k in BOOK_KEYS} for row in per_book.to_dicts()
    }
    return classified, figures


def add_figures(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {k: total.get(k, 0) + more.get(k, 0) for k in FIGURE_KEYS}
