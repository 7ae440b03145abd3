"""A quote: the schedule, rates and APR of a possible draw. Needs no database."""

from __future__ import annotations

from datetime import date
from typing import Any

from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate, format_percent_bp100
from microloan.domain.schedule import MAX_TERM_MONTHS, Method, Schedule, apr_bp100, capped_schedule
from microloan.errors import InvalidInput


def quote(
    amount_fen: int, term_months: int, rate: DailyRate, method: Method, drawn_on: date
) -> Schedule:
    if amount_fen <= 0:
        raise InvalidInput("must be more than 0", field="amount")
    if not 1 <= term_months <= MAX_TERM_MONTHS:
        raise InvalidInput(f"must be 1–{MAX_TERM_MONTHS} months (got {term_months})", field="term")
    rate.check_band()
    return capped_schedule(amount_fen, term_months, rate, method, drawn_on)


def quote_view(s: Schedule) -> dict[str, Any]:
    return {
        "principal": format_yuan(s.principal_fen),
        "term_months": s.term_months,
        "method": s.method.value,
        "drawn_on": s.drawn_on.isoformat(),
        "installments": [
            {
                "period": k + 1,
                "due_date": s.due_dates[k].isoformat(),
                "days": s.days[k],
                "principal": format_yuan(s.principals[k]),
                "interest": format_yuan(s.interests[k]),
                "total": format_yuan(s.principals[k] + s.interests[k]),
            }
            for k in range(s.term_months)
        ],
        "total_interest": format_yuan(s.total_interest_fen),
        "daily_rate": str(s.rate),
        "annual_simple_rate": format_percent_bp100(s.rate.annual_simple_bp100()),
        "apr": format_percent_bp100(apr_bp100(s.principal_fen, s.totals)),
    }
