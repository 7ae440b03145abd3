"""Business dates and due dates. Dates are plain ``datetime.date`` in Asia/Shanghai."""

from __future__ import annotations

import calendar
from datetime import date
from functools import lru_cache

from microloan.errors import InvalidInput

BUSINESS_TZ = "Asia/Shanghai"


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months on its day, clamped to the month's last day."""
    index = start.month - 1 + months
    year, month0 = divmod(index, 12)
    year += start.year
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


@lru_cache(maxsize=8192)
def due_dates(drawn_on: date, term_months: int) -> tuple[tuple[date, ...], tuple[int, ...]]:
    """Due dates 1..n, each from the draw date (never chained), and the days of each period."""
    dues = tuple(add_months(drawn_on, k) for k in range(1, term_months + 1))
    ordinals = [drawn_on.toordinal(), *(d.toordinal() for d in dues)]
    days = tuple(ordinals[k] - ordinals[k - 1] for k in range(1, term_months + 1))
    return dues, days


def parse_date(text: str, *, field: str = "date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInput(f"must be a date as YYYY-MM-DD (got {text!r})", field=field) from None
