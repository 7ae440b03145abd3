"""Five-tier classification, non-accrual, provisions and the day's portfolio figures
(lending rules §7). Pure: the end of day feeds it columns of DPD and balances.

Classification is by borrower: every loan of a borrower takes the tier of the worst DPD among
their open loans. Rates are exact: provision rates in parts per million, ratios as fractions
shown to four decimals of a per cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from microloan.domain.money import round_half_up

PPM = 1_000_000
NON_ACCRUAL_DPD = 91  # from this DPD interest and penalty are booked off balance
WRITE_OFF_DPD = 181  # more than 180 DPD: a write-off candidate


class Tier(StrEnum):
    """正常 / 关注 / 次级 / 可疑 / 损失."""

    NORMAL = "normal"
    SPECIAL_MENTION = "special_mention"
    SUBSTANDARD = "substandard"
    DOUBTFUL = "doubtful"
    LOSS = "loss"

    @property
    def is_npl(self) -> bool:
        return self in NPL_TIERS

    @property
    def label(self) -> str:
        return _LABELS[self]


NPL_TIERS = frozenset({Tier.SUBSTANDARD, Tier.DOUBTFUL, Tier.LOSS})
_LABELS = {
    Tier.NORMAL: "正常 Normal",
    Tier.SPECIAL_MENTION: "关注 Special mention",
    Tier.SUBSTANDARD: "次级 Substandard",
    Tier.DOUBTFUL: "可疑 Doubtful",
    Tier.LOSS: "损失 Loss",
}
# upper DPD bound of each tier, inclusive; loss has none
_BOUNDS = (
    (0, Tier.NORMAL),
    (90, Tier.SPECIAL_MENTION),
    (270, Tier.SUBSTANDARD),
    (360, Tier.DOUBTFUL),
)

DEFAULT_PROVISION_PPM: Mapping[Tier, int] = {
    Tier.NORMAL: 10_000,  # 1 %
    Tier.SPECIAL_MENTION: 20_000,  # 2 %
    Tier.SUBSTANDARD: 250_000,  # 25 %
    Tier.DOUBTFUL: 500_000,  # 50 %
    Tier.LOSS: 1_000_000,  # 100 %
}


def tier_for(dpd: int) -> Tier:
    """normal 0; special mention 1–90; substandard 91–270; doubtful 271–360; loss > 360."""
    assert dpd >= 0, "days past due are never negative"
    for upper, tier in _BOUNDS:
        if dpd <= upper:
            return tier
    return Tier.LOSS


def borrower_tier(open_loan_dpds: Iterable[int]) -> Tier:
    """The borrower's tier: that of the worst DPD among their open loans (normal if none)."""
    return tier_for(max(open_loan_dpds, default=0))


def is_non_accrual(dpd: int) -> bool:
    return dpd >= NON_ACCRUAL_DPD


def is_write_off_candidate(dpd: int) -> bool:
    return dpd >= WRITE_OFF_DPD


def required_allowance_fen(
    tier: Tier, exposure_fen: int, rates: Mapping[Tier, int] = DEFAULT_PROVISION_PPM
) -> int:
    """round(rate × exposure), half up; exposure = outstanding principal plus interest and
    penalty receivable on balance."""
    assert exposure_fen >= 0
    rate = rates[tier]
    assert 0 <= rate <= PPM
    return round_half_up(exposure_fen * rate, PPM)


@dataclass(frozen=True, slots=True)
class PortfolioFigures:
    """The day's figures: balances in fen, ratios exact (``None``: not defined)."""

    loan_balance_fen: int  # outstanding principal not written off
    npl_fen: int  # principal of substandard, doubtful and loss loans
    allowance_fen: int  # the total required allowance

    def __post_init__(self) -> None:
        assert 0 <= self.npl_fen <= self.loan_balance_fen and self.allowance_fen >= 0

    @property
    def npl_ratio(self) -> Fraction | None:
        return None if self.loan_balance_fen == 0 else Fraction(self.npl_fen, self.loan_balance_fen)

    @property
    def provision_coverage(self) -> Fraction | None:
        """Allowance over NPL principal; "n/a" (None) when there is no NPL."""
        return None if self.npl_fen == 0 else Fraction(self.allowance_fen, self.npl_fen)

    @property
    def loan_provision_ratio(self) -> Fraction | None:
        if self.loan_balance_fen == 0:
            return None
        return Fraction(self.allowance_fen, self.loan_balance_fen)


def format_ratio(value: Fraction | None) -> str:
    """``Fraction(1, 3)`` → ``"33.3333%"`` (half up); ``None`` → ``"n/a"``."""
    if value is None:
        return "n/a"
    hundred_thousandths = round_half_up(value.numerator * 1_000_000, value.denominator)
    whole, part = divmod(hundred_thousandths, 10_000)
    return f"{whole}.{part:04d}%"
