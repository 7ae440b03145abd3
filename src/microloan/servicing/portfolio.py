"""Classification, provisions and the day's figures over a whole book at once, as columns
(lending rules §7): the bulk form of ``domain.classification``, which stays the definition —
a property test checks that both agree loan by loan.

Input: one row per open (not written-off) loan with ``customer_id``, ``dpd``,
``principal_fen`` (outstanding), ``interest_fen`` and ``penalty_fen`` (receivable on balance).
"""

from __future__ import annotations

import polars as pl

from microloan.domain.classification import (
    DEFAULT_PROVISION_PPM,
    NON_ACCRUAL_DPD,
    PPM,
    PortfolioFigures,
    Tier,
)

LOAN_COLUMNS = {
    "customer_id": pl.Int64,
    "dpd": pl.Int64,
    "principal_fen": pl.Int64,
    "interest_fen": pl.Int64,
    "penalty_fen": pl.Int64,
}
_TIER_ORDER = list(Tier)


def _tier_expr(dpd: pl.Expr) -> pl.Expr:
    return (
        pl.when(dpd == 0)
        .then(pl.lit(Tier.NORMAL.value))
        .when(dpd <= 90)
        .then(pl.lit(Tier.SPECIAL_MENTION.value))
        .when(dpd <= 270)
        .then(pl.lit(Tier.SUBSTANDARD.value))
        .when(dpd <= 360)
        .then(pl.lit(Tier.DOUBTFUL.value))
        .otherwise(pl.lit(Tier.LOSS.value))
    )


def classify(loans: pl.DataFrame, rates: dict[Tier, int] | None = None) -> pl.DataFrame:
    """Each loan with its borrower's tier (the worst DPD of their open loans), non-accrual
    flag, exposure and required allowance (half up, in fen)."""
    rates = dict(DEFAULT_PROVISION_PPM if rates is None else rates)
    missing = set(LOAN_COLUMNS) - set(loans.columns)
    assert not missing, f"loan columns missing: {sorted(missing)}"
    rate_of = pl.col("tier").replace_strict(
        {t.value: rates[t] for t in Tier}, return_dtype=pl.Int64
    )
    return (
        loans.with_columns(pl.col(c).cast(t) for c, t in LOAN_COLUMNS.items())
        .with_columns(
            _tier_expr(pl.col("dpd").max().over("customer_id")).alias("tier"),
            (pl.col("dpd") >= NON_ACCRUAL_DPD).alias("non_accrual"),
            (pl.col("principal_fen") + pl.col("interest_fen") + pl.col("penalty_fen")).alias(
                "exposure_fen"
            ),
        )
        .with_columns(
            ((2 * pl.col("exposure_fen") * rate_of + PPM) // (2 * PPM)).alias("allowance_fen")
        )
    )


def figures(classified: pl.DataFrame) -> PortfolioFigures:
    npl = [t.value for t in Tier if t.is_npl]
    totals = classified.select(
        pl.col("principal_fen").sum().alias("balance"),
        pl.col("principal_fen").filter(pl.col("tier").is_in(npl)).sum().alias("npl"),
        pl.col("allowance_fen").sum().alias("allowance"),
    ).row(0)
    balance, npl_fen, allowance = (int(x or 0) for x in totals)
    return PortfolioFigures(balance, npl_fen, allowance)


def by_tier(classified: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Loans, principal and allowance per tier, every tier present (zeros included)."""
    grouped = classified.group_by("tier").agg(
        pl.len().alias("loans"),
        pl.col("principal_fen").sum(),
        pl.col("allowance_fen").sum(),
    )
    found = {r["tier"]: r for r in grouped.to_dicts()}
    return {
        t.value: {
            "loans": int(found.get(t.value, {}).get("loans", 0)),
            "principal_fen": int(found.get(t.value, {}).get("principal_fen", 0)),
            "allowance_fen": int(found.get(t.value, {}).get("allowance_fen", 0)),
        }
        for t in _TIER_ORDER
    }
