"""Lending rules §7: five tiers by borrower, non-accrual, provisions and the day's figures."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microloan.domain.classification import (
    DEFAULT_PROVISION_PPM,
    PortfolioFigures,
    Tier,
    borrower_tier,
    format_ratio,
    is_non_accrual,
    is_write_off_candidate,
    required_allowance_fen,
    tier_for,
)


@pytest.mark.parametrize(
    ("dpd", "tier"),
    [
        (0, Tier.NORMAL),
        (1, Tier.SPECIAL_MENTION),
        (90, Tier.SPECIAL_MENTION),
        (91, Tier.SUBSTANDARD),
        (270, Tier.SUBSTANDARD),
        (271, Tier.DOUBTFUL),
        (360, Tier.DOUBTFUL),
        (361, Tier.LOSS),
        (5_000, Tier.LOSS),
    ],
)
def test_tier_boundaries(dpd: int, tier: Tier) -> None:
    assert tier_for(dpd) is tier
    assert tier.is_npl == (dpd >= 91)


def test_a_borrower_takes_the_worst_tier_of_their_open_loans() -> None:
    assert borrower_tier([0, 0, 95, 3]) is Tier.SUBSTANDARD
    assert borrower_tier([]) is Tier.NORMAL
    assert Tier.DOUBTFUL.label == "可疑 Doubtful"


def test_non_accrual_from_91_and_write_off_candidates_past_180() -> None:
    assert (is_non_accrual(90), is_non_accrual(91)) == (False, True)
    assert (is_write_off_candidate(180), is_write_off_candidate(181)) == (False, True)


def test_provision_arithmetic() -> None:
    # 1 % of ¥1,234.56 plus ¥10.05 receivable = 12.4461 yuan → 1,244.61 fen → 1,245 fen
    assert required_allowance_fen(Tier.NORMAL, 123_456 + 1_005) == 1_245
    assert required_allowance_fen(Tier.SPECIAL_MENTION, 50) == 1  # 1.0 fen
    assert required_allowance_fen(Tier.SPECIAL_MENTION, 25) == 1  # 0.5 fen, half up
    assert required_allowance_fen(Tier.SPECIAL_MENTION, 24) == 0  # 0.48 fen
    assert required_allowance_fen(Tier.SUBSTANDARD, 1_000_002) == 250_001  # 250,000.5 → up
    assert required_allowance_fen(Tier.DOUBTFUL, 333) == 167  # 166.5 → up
    assert required_allowance_fen(Tier.LOSS, 987_654) == 987_654
    assert [DEFAULT_PROVISION_PPM[t] for t in Tier] == [10_000, 20_000, 250_000, 500_000, 10**6]


@given(st.sampled_from(list(Tier)), st.integers(0, 10**12))
def test_allowance_never_exceeds_exposure_and_rises_with_the_tier(
    tier: Tier, exposure: int
) -> None:
    allowance = required_allowance_fen(tier, exposure)
    assert 0 <= allowance <= exposure
    tiers = list(Tier)
    for worse in tiers[tiers.index(tier) :]:
        assert required_allowance_fen(worse, exposure) >= allowance


@given(st.integers(0, 2_000), st.integers(0, 2_000))
def test_tiers_never_improve_as_days_pass(a: int, b: int) -> None:
    order = list(Tier)
    lo, hi = sorted((a, b))
    assert order.index(tier_for(lo)) <= order.index(tier_for(hi))


def test_the_days_figures() -> None:
    f = PortfolioFigures(loan_balance_fen=3_000_000, npl_fen=1_000_000, allowance_fen=300_000)
    assert f.npl_ratio == Fraction(1, 3) and format_ratio(f.npl_ratio) == "33.3333%"
    assert format_ratio(f.provision_coverage) == "30.0000%"
    assert format_ratio(f.loan_provision_ratio) == "10.0000%"
    none = PortfolioFigures(loan_balance_fen=1_000_000, npl_fen=0, allowance_fen=10_000)
    assert none.provision_coverage is None and format_ratio(none.provision_coverage) == "n/a"
    assert format_ratio(none.npl_ratio) == "0.0000%"
    empty = PortfolioFigures(loan_balance_fen=0, npl_fen=0, allowance_fen=0)
    assert format_ratio(empty.loan_provision_ratio) == "n/a"
    assert format_ratio(Fraction(2, 3)) == "66.6667%"  # half up at the fourth decimal
