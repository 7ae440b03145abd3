"""Onboarding checks: identity numbers (GB 11643), age, phone, card Luhn, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.access.identity import (
    check_age,
    check_card_number,
    check_phone,
    id_check_char,
    luhn_valid,
    mask,
    mask_phone,
    parse_id_number,
)
from microloan.errors import InvalidInput

TODAY = date(2026, 11, 23)
STANDARD_EXAMPLE = "11010519491231002X"  # the example number printed in GB 11643-1999


def _with_check(first17: str) -> str:
    return first17 + id_check_char(first17)


def test_the_standards_own_example_is_valid() -> None:
    ident = parse_id_number(STANDARD_EXAMPLE, on=TODAY)
    assert ident.birth_date == date(1949, 12, 31)
    assert ident.region_code == "110105"
    assert ident.is_male is False  # sequence 002: even
    assert ident.masked == "1101**********002X"


def test_a_lower_case_x_reads_as_upper_case() -> None:
    assert parse_id_number(STANDARD_EXAMPLE.lower(), on=TODAY).value == STANDARD_EXAMPLE


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "identity.id_number.format"),
        ("11010519491231002", "identity.id_number.format"),  # 17 characters
        ("01010519491231002X", "identity.id_number.format"),  # region cannot start with 0
        ("110105194912310029", "identity.id_number.check_digit"),
        ("11010519491231003X", "identity.id_number.check_digit"),
        (_with_check("44030819990230123"), "identity.id_number.birth_date"),  # 30 February
        (_with_check("44030830000101123"), "identity.id_number.birth_date"),  # the future
    ],
)
def test_invalid_numbers_are_refused_with_the_rule(text: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_id_number(text, on=TODAY)
    assert (refused.value.code, refused.value.field) == (code, "id_number")


@settings(max_examples=300, deadline=None)
@given(
    region=st.integers(100000, 999999),
    born=st.dates(date(1920, 1, 1), date(2026, 11, 23)),
    seq=st.integers(0, 999),
    position=st.integers(0, 16),
    bump=st.integers(1, 9),
)
def test_any_valid_number_parses_and_any_single_digit_change_is_caught(
    region: int, born: date, seq: int, position: int, bump: int
) -> None:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    ident = parse_id_number(_with_check(first17), on=TODAY)
    assert (ident.birth_date, ident.is_male) == (born, seq % 2 == 1)
    digits = list(first17)
    digits[position] = str((int(digits[position]) + bump) % 10)
    changed = "".join(digits) + id_check_char(first17)
    with pytest.raises(InvalidInput):
        parse_id_number(changed, on=TODAY)


@pytest.mark.parametrize(
    ("born", "age", "allowed"),
    [
        ("20081123", 18, True),  # 18th birthday today
        ("20081124", 17, False),  # 18 tomorrow
        ("19661123", 60, True),  # 60 is inside 18–60
        ("19651123", 61, False),  # 61 today
        ("19651124", 60, True),  # 61 tomorrow
    ],
)
def test_age_range_boundaries(born: str, age: int, allowed: bool) -> None:
    ident = parse_id_number(_with_check(f"440308{born}123"), on=TODAY)
    assert ident.age_on(TODAY) == age
    if allowed:
        assert check_age(ident, on=TODAY) == age
    else:
        with pytest.raises(InvalidInput) as refused:
            check_age(ident, on=TODAY)
        assert refused.value.code == "identity.age_out_of_range"


@pytest.mark.parametrize("text", ["13800138000", "+86 138 0013 8000", "199-0000-1111"])
def test_mainland_mobiles_are_accepted(text: str) -> None:
    assert len(check_phone(text)) == 11


@pytest.mark.parametrize("text", ["", "12800138000", "1380013800", "138001380000", "abc"])
def test_other_phone_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_phone(text)
    assert refused.value.code == "identity.phone.format"


def test_luhn_on_known_numbers() -> None:
    assert luhn_valid("4111111111111111")  # the well-known Luhn-valid test card
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111x1111111")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=15, max_size=18), st.integers(1, 9))
def test_luhn_catches_every_single_digit_error(body: str, bump: int) -> None:
    check = next(str(d) for d in range(10) if luhn_valid(body + str(d)))
    card = check_card_number(body + check)
    wrong = str((int(card[0]) + bump) % 10) + card[1:]
    assert not luhn_valid(wrong)


@pytest.mark.parametrize(
    ("text", "code"),
    [("4111 1111 1111 1112", "card.number.luhn"), ("123", "card.number.format")],
)
def test_bad_card_numbers_are_refused(text: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_card_number(text)
    assert refused.value.code == code


def test_masking() -> None:
    assert mask("440308199901011234") == "4403**********1234"
    assert mask("6222021234567890") == "6222********7890"
    assert mask("1234") == "****"
    assert mask_phone("13800138000") == "138****8000"
