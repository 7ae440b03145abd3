"""Money in fen; yuan only at the edges (lending rules §1)."""

from __future__ import annotations

import pytest

from microloan.domain.money import format_cny, format_yuan, parse_yuan, round_half_up
from microloan.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1234.50", 123450),
        ("1234.5", 123450),
        ("1234", 123400),
        ("0", 0),
        ("0.01", 1),
        ("0.1", 10),
        ("10000.00", 1_000_000),
        (" 12.34 ", 1234),
        (100, 10000),
    ],
)
def test_parse_yuan_accepts_at_most_two_decimals(text: str | int, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "-0.01",
        "-0",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "inf",
        "",
        "   ",
        "abc",
        "12a",
        "1,000.00",
        "1e3",
        "¥10",
        ".5",
        "5.",
        "10.500",
        "10.001",
        "0.123",
        "1..2",
        "+1",
    ],
)
def test_parse_yuan_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(text, field="amount")
    assert caught.value.field == "amount"
    assert caught.value.code == "input.invalid"


def test_parse_yuan_names_the_reason() -> None:
    with pytest.raises(InvalidInput, match="negative"):
        parse_yuan("-5.00")
    with pytest.raises(InvalidInput, match="more than two decimals"):
        parse_yuan("10.500")
    with pytest.raises(InvalidInput, match="yuan amount"):
        parse_yuan("NaN")


@pytest.mark.parametrize("value", [-1, True, 10.5, None])
def test_parse_yuan_refuses_non_string_non_natural_values(value: object) -> None:
    # A float never holds money; a bool is not a number of yuan.
    with pytest.raises(InvalidInput):
        parse_yuan(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fen", "yuan", "cny"),
    [
        (0, "0.00", "¥0.00"),
        (1, "0.01", "¥0.01"),
        (123450, "1234.50", "¥1,234.50"),
        (100_882, "1008.82", "¥1,008.82"),
        (1_016_612, "10166.12", "¥10,166.12"),
        (-306, "-3.06", "-¥3.06"),
    ],
)
def test_format(fen: int, yuan: str, cny: str) -> None:
    assert format_yuan(fen) == yuan
    assert format_cny(fen) == cny


@pytest.mark.parametrize("fen", [0, 1, 99, 100, 123_456_789])
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_yuan(format_yuan(fen)) == fen


@pytest.mark.parametrize(
    ("numerator", "denominator", "rounded"),
    [
        (5, 10, 1),  # half goes up
        (4, 10, 0),
        (15, 10, 2),
        (14, 10, 1),
        (-5, 10, -1),  # halves away from zero
        (-4, 10, 0),
        (0, 7, 0),
        (3_0560, 1_0000, 3),
    ],
)
def test_round_half_up(numerator: int, denominator: int, rounded: int) -> None:
    assert round_half_up(numerator, denominator) == rounded
