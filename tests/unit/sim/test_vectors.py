"""The vectorised rules agree with the scalar ones of ``microloan.access.identity``."""

from __future__ import annotations

import numpy as np

from microloan.access.identity import id_check_char, luhn_valid
from microloan.sim.vectors import (
    digits_of,
    duplicate_positions,
    hex_ids,
    id_check_chars,
    luhn_check_digits,
    mix64,
)


def test_digits_of_pads_and_orders_most_significant_first() -> None:
    values = np.array([0, 7, 1234, 98765, 10**17 - 1], dtype=np.int64)
    assert ["".join(map(str, row)) for row in digits_of(values, 17)] == [
        f"{v:017d}" for v in values
    ]


def test_id_check_characters_match_the_scalar_rule() -> None:
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, (500, 17), dtype=np.uint8)
    chars = id_check_chars(digits)
    for row, char in zip(digits, chars, strict=True):
        assert chr(char) == id_check_char("".join(map(str, row)))


def test_luhn_check_digits_make_valid_numbers() -> None:
    rng = np.random.default_rng(1)
    for length in (15, 17, 18):
        body = rng.integers(0, 10, (300, length), dtype=np.uint8)
        check = luhn_check_digits(body)
        for row, digit in zip(body, check, strict=True):
            assert luhn_valid("".join(map(str, row)) + str(digit))


def test_duplicate_positions_keeps_the_first() -> None:
    keys = np.array([5, 3, 5, 9, 3, 5], dtype=np.int64)
    assert duplicate_positions(keys).tolist() == [2, 4, 5]


def test_mix64_is_a_bijection_and_hex_ids_look_opaque() -> None:
    words = mix64(np.arange(100_000, dtype=np.uint64), 12345)
    assert len(np.unique(words)) == 100_000
    ids = hex_ids(words[:3], "wx_", "id").to_list()
    assert all(i.startswith("wx_") and len(i) == 19 for i in ids)
    assert ids[0] == "wx_" + f"{int(words[0]):016x}"
