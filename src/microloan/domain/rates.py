"""Daily simple rates held exactly as an integer number of 1e-10 per day.

Every rate shares one scale, so interest is integer arithmetic: ``fen × rate_units × days / SCALE``.
The penalty rate min(r × 3/2, 1/1500) is held over its own scale, :data:`PENALTY_SCALE`,
on which both 3r/2 and 1/1500 are whole numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from microloan.errors import InvalidInput

RATE_DECIMALS = 10
RATE_SCALE = 10**RATE_DECIMALS
PENALTY_SCALE = 6 * RATE_SCALE
PENALTY_CAP_UNITS = PENALTY_SCALE // 1500  # 1/1500 a day = 24 % / 360
MICRO_STEP_UNITS = RATE_SCALE // 1_000_000  # 0.000001 a day

BAND_MIN_UNITS = 830_000  # 0.000083
BAND_MAX_UNITS = 6_600_000  # 0.00066


@dataclass(frozen=True, slots=True, order=True)
class DailyRate:
    """A daily simple rate of ``units / RATE_SCALE``."""

    units: int

    def __post_init__(self) -> None:
        assert self.units >= 0

    @classmethod
    def parse(cls, text: str | Decimal, *, field: str = "rate") -> DailyRate:
        try:
            value = Decimal(str(text).strip())
        except InvalidOperation:
            raise InvalidInput(
                f"must be a decimal daily rate such as 0.0005 (got {text!r})", field=field
            ) from None
        if not value.is_finite() or value < 0:
            raise InvalidInput(f"must be a positive decimal (got {text!r})", field=field)
        scaled = value * RATE_SCALE
        if scaled != scaled.to_integral_value():
            raise InvalidInput(
                f"has more than {RATE_DECIMALS} decimals (got {text!r})", field=field
            )
        return cls(int(scaled))

    def check_band(self, *, field: str = "rate") -> DailyRate:
        if not BAND_MIN_UNITS <= self.units <= BAND_MAX_UNITS:
            raise InvalidInput(
                f"daily rate {self.as_decimal()} is outside the product band 0.000083–0.00066",
                field=field,
            )
        return self

    def as_decimal(self) -> Decimal:
        value: Decimal = (Decimal(self.units) / RATE_SCALE).normalize()
        return value

    def __str__(self) -> str:
        return _rate_text(self.units)

    @property
    def penalty_units(self) -> int:
        """min(r × 3/2, 1/1500) over PENALTY_SCALE."""
        units: int = min(9 * self.units, PENALTY_CAP_UNITS)
        return units

    def annual_simple_bp100(self) -> int:
        """Annual simple rate (daily × 360) in hundredths of a per cent, half up."""
        # rate × 360 × 100 % × 100 = units × 3_600_000 / SCALE
        hundredths: int = (2 * self.units * 3_600_000 + RATE_SCALE) // (2 * RATE_SCALE)
        return hundredths


def format_percent_bp100(hundredths: int) -> str:
    """1812 → ``"18.12%"``."""
    whole, part = divmod(hundredths, 100)
    return f"{whole}.{part:02d}%"


@lru_cache(maxsize=8192)  # a book holds a few thousand distinct rates at most
def _rate_text(units: int) -> str:
    """``str(DailyRate(units))``: the exact decimal, trailing zeros dropped."""
    return format((Decimal(units) / RATE_SCALE).normalize(), "f")
