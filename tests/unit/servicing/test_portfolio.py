"""The bulk classification agrees with the rules loan by loan, and the day's figures add up."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.domain.classification import (
    Tier,
    borrower_tier,
    format_ratio,
    is_non_accrual,
    required_allowance_fen,
)
from microloan.servicing.portfolio import by_tier, classify, figures

loans = st.lists(
    st.tuples(
        st.integers(1, 6),  # customer
        st.sampled_from([0, 1, 30, 90, 91, 180, 270, 271, 360, 361, 900]),
        st.integers(0, 10**9),
        st.integers(0, 10**6),
        st.integers(0, 10**5),
    ),
    min_size=1,
    max_size=40,
)


def frame(rows: list[tuple[int, int, int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["customer_id", "dpd", "principal_fen", "interest_fen", "penalty_fen"],
        orient="row",
    )


@settings(max_examples=200)
@given(loans)
def test_bulk_classification_equals_the_rules_loan_by_loan(rows: list[tuple[int, ...]]) -> None:
    out = classify(frame(rows))  # type: ignore[arg-type]
    for (cid, dpd, principal, interest, penalty), got in zip(rows, out.to_dicts(), strict=True):
        tier = borrower_tier(d for c, d, *_ in rows if c == cid)
        assert got["tier"] == tier.value
        assert got["non_accrual"] == is_non_accrual(dpd)
        assert got["allowance_fen"] == required_allowance_fen(tier, principal + interest + penalty)
    f = figures(out)
    assert f.loan_balance_fen == sum(r[2] for r in rows)
    assert f.allowance_fen == int(out["allowance_fen"].sum())
    tiers = by_tier(out)
    assert sum(t["loans"] for t in tiers.values()) == len(rows)
    assert f.npl_fen == sum(tiers[t.value]["principal_fen"] for t in Tier if t.is_npl)


def test_a_small_book_by_hand() -> None:
    book = frame(
        [
            (1, 0, 1_000_000, 1_000, 0),  # normal: 1 % of 1,001,000 = 10,010
            (2, 10, 500_000, 0, 0),  # special mention: 2 % = 10,000
            (2, 0, 500_000, 0, 0),  # takes its borrower's tier: 10,000
            (3, 120, 200_000, 3_000, 1_000),  # substandard, non-accrual: 25 % of 204,000 = 51,000
        ]
    )
    out = classify(book)
    assert out["tier"].to_list() == [
        "normal",
        "special_mention",
        "special_mention",
        "substandard",
    ]
    assert out["allowance_fen"].to_list() == [10_010, 10_000, 10_000, 51_000]
    assert out["non_accrual"].to_list() == [False, False, False, True]
    f = figures(out)
    assert (f.loan_balance_fen, f.npl_fen, f.allowance_fen) == (2_200_000, 200_000, 81_010)
    assert format_ratio(f.npl_ratio) == "9.0909%"
    assert format_ratio(f.provision_coverage) == "40.5050%"
    assert format_ratio(f.loan_provision_ratio) == "3.6823%"
    assert by_tier(out)["loss"] == {"loans": 0, "principal_fen": 0, "allowance_fen": 0}


def test_an_empty_book() -> None:
    f = figures(classify(frame([])))
    assert (f.loan_balance_fen, f.npl_fen, f.allowance_fen) == (0, 0, 0)
    assert format_ratio(f.npl_ratio) == "n/a"
