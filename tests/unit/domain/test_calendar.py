"""Due dates: D plus k calendar months, clamped to the month's end, never chained (§3)."""

from __future__ import annotations

from datetime import date

import pytest

from microloan.domain.calendar import add_months, due_dates, parse_date
from microloan.errors import InvalidInput


def test_due_dates_from_jan_31_in_a_non_leap_year() -> None:
    dues, days = due_dates(date(2026, 1, 31), 4)
    assert dues == (date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31))
    assert days == (28, 31, 30, 31)


def test_due_dates_from_jan_31_in_a_leap_year() -> None:
    dues, days = due_dates(date(2024, 1, 31), 4)
    assert dues == (date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31))
    assert days == (29, 31, 30, 31)


def test_due_dates_are_never_chained_from_the_previous_one() -> None:
    # Chaining would give 28 Feb → 28 Mar → 28 Apr; from D they stay on the 31st / month end.
    dues, _ = due_dates(date(2026, 1, 31), 12)
    assert [d.day for d in dues] == [28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31]
    assert dues[-1] == date(2027, 1, 31)


def test_reference_due_dates_of_section_9() -> None:
    dues, days = due_dates(date(2026, 1, 31), 12)
    assert (dues[0], days[0]) == (date(2026, 2, 28), 28)
    assert (dues[1], days[1]) == (date(2026, 3, 31), 31)
    assert days == (28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31)
    assert sum(days) == (date(2027, 1, 31) - date(2026, 1, 31)).days


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 1, 30), 1, date(2024, 2, 29)),
        (date(2026, 1, 29), 1, date(2026, 2, 28)),
        (date(2026, 1, 28), 1, date(2026, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 12, 31), 2, date(2027, 2, 28)),
        (date(2027, 12, 31), 2, date(2028, 2, 29)),
        (date(2026, 11, 15), 1, date(2026, 12, 15)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 12, 15), 36, date(2029, 12, 15)),
        (date(2026, 5, 10), 0, date(2026, 5, 10)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_periods_span_the_whole_term() -> None:
    for drawn in (date(2024, 1, 31), date(2025, 2, 28), date(2026, 12, 31), date(2030, 6, 30)):
        dues, days = due_dates(drawn, 36)
        assert len(dues) == len(days) == 36
        assert all(28 <= d <= 31 for d in days)
        assert sum(days) == (dues[-1] - drawn).days
        assert list(dues) == sorted(set(dues))


def test_parse_date() -> None:
    assert parse_date(" 2026-01-31 ") == date(2026, 1, 31)
    for bad in ("2026-02-30", "31/01/2026", "", "tomorrow"):
        with pytest.raises(InvalidInput) as caught:
            parse_date(bad, field="on")
        assert caught.value.field == "on"
