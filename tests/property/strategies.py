"""Hypothesis strategies for the domain: loans in the product's ranges, dates 2024–2030."""

from __future__ import annotations

import calendar
from datetime import date

from hypothesis import strategies as st

from microloan.domain.rates import BAND_MAX_UNITS, BAND_MIN_UNITS, DailyRate
from microloan.domain.schedule import MAX_TERM_MONTHS, Method, Schedule, build_schedule

FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2030, 12, 31)

# Month ends and the days just before them, where due dates clamp (leap years 2024 and 2028).
EDGE_DAYS = tuple(
    date(year, month, day)
    for year in range(2024, 2031)
    for month in range(1, 13)
    for day in range(28, calendar.monthrange(year, month)[1] + 1)
)

principals_fen = st.integers(min_value=10_000, max_value=20_000_000)
terms = st.integers(min_value=1, max_value=MAX_TERM_MONTHS)
rates = st.builds(DailyRate, st.integers(min_value=BAND_MIN_UNITS, max_value=BAND_MAX_UNITS))
methods = st.sampled_from(list(Method))
draw_dates = st.one_of(st.dates(FIRST_DAY, LAST_DAY), st.sampled_from(EDGE_DAYS))


@st.composite
def schedules(draw: st.DrawFn, *, max_term: int = MAX_TERM_MONTHS) -> Schedule:
    return build_schedule(
        draw(principals_fen),
        draw(st.integers(min_value=1, max_value=max_term)),
        draw(rates),
        draw(methods),
        draw(draw_dates),
    )
