"""Daily simple rates held exactly; annual simple rate; penalty rate (lending rules §1, §6)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from microloan.domain.rates import (
    BAND_MAX_UNITS,
    BAND_MIN_UNITS,
    PENALTY_SCALE,
    RATE_SCALE,
    DailyRate,
    format_percent_bp100,
)
from microloan.errors import InvalidInput


def test_parse_holds_the_rate_exactly() -> None:
    rate = DailyRate.parse("0.0005")
    assert rate.units == 5_000_000
    assert Fraction(rate.units, RATE_SCALE) == Fraction(5, 10_000)
    assert rate.as_decimal() == Decimal("0.0005")
    assert str(rate) == "0.0005"
    assert DailyRate.parse(Decimal("0.000083")).units == BAND_MIN_UNITS
    assert DailyRate.parse("0.00066").units == BAND_MAX_UNITS
    assert DailyRate.parse("0.0000000001").units == 1


@pytest.mark.parametrize(
    "text", ["", "abc", "NaN", "sNaN", "Infinity", "-0.0005", "0.00000000001", "1/2000"]
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        DailyRate.parse(text, field="rate")
    assert caught.value.field == "rate"


@pytest.mark.parametrize("text", ["0.000083", "0.0005", "0.00066"])
def test_band_accepts_its_edges(text: str) -> None:
    rate = DailyRate.parse(text)
    assert rate.check_band() is rate


@pytest.mark.parametrize("text", ["0.0000829", "0.0006601", "0", "0.001"])
def test_band_refuses_outside(text: str) -> None:
    with pytest.raises(InvalidInput, match="band"):
        DailyRate.parse(text).check_band()


@pytest.mark.parametrize(
    ("text", "annual_bp100", "shown"),
    [
        ("0.0005", 1800, "18.00%"),  # §9
        ("0.00066", 2376, "23.76%"),  # §1: 0.066 % → 23.76 %
        ("0.000083", 299, "2.99%"),  # 2.988 % half up
        ("0.0003", 1080, "10.80%"),
    ],
)
def test_annual_simple_rate_is_daily_times_360(text: str, annual_bp100: int, shown: str) -> None:
    assert DailyRate.parse(text).annual_simple_bp100() == annual_bp100
    assert format_percent_bp100(annual_bp100) == shown


@pytest.mark.parametrize(("bp100", "shown"), [(1812, "18.12%"), (1811, "18.11%"), (5, "0.05%")])
def test_format_percent_has_two_decimals_and_a_sign(bp100: int, shown: str) -> None:
    assert format_percent_bp100(bp100) == shown


# Penalty rate = min(r × 3/2, 1/1500) a day, held exactly.
@pytest.mark.parametrize(
    ("text", "penalty"),
    [
        ("0.000083", Fraction(83, 1_000_000) * Fraction(3, 2)),  # 3r/2 branch
        ("0.0004", Fraction(6, 10_000)),  # 3r/2 = 0.0006 < 1/1500
        ("0.000444", Fraction(666, 1_000_000)),  # just below the crossing at r = 1/2250
        ("0.000445", Fraction(1, 1500)),  # just above it: capped
        ("0.0005", Fraction(1, 1500)),  # §9: 0.00075 capped to 1/1500
        ("0.00066", Fraction(1, 1500)),
    ],
)
def test_penalty_rate_is_min_of_one_and_a_half_r_and_1_over_1500(
    text: str, penalty: Fraction
) -> None:
    rate = DailyRate.parse(text)
    assert Fraction(rate.penalty_units, PENALTY_SCALE) == penalty
    assert penalty == min(Fraction(rate.units, RATE_SCALE) * Fraction(3, 2), Fraction(1, 1500))
