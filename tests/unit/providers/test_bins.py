"""Bank identification from the BIN: longest prefix wins, unknown is refused."""

from __future__ import annotations

import pytest

from microloan.errors import InvalidInput
from microloan.providers import bins
from microloan.providers.bins import BIN_TABLE, Bank, CardType, bank_of


@pytest.mark.parametrize(
    ("card", "code", "card_type", "length"),
    [
        ("6222021001115555555", "ICBC", CardType.DEBIT, 19),
        ("6217001234567890123", "CCB", CardType.DEBIT, 19),
        ("6228481234567890123", "ABC", CardType.DEBIT, 19),
        ("6225881234567890", "CMB", CardType.DEBIT, 16),
        ("4392251234567890", "CMB", CardType.CREDIT, 16),
        ("622908123456789012", "CIB", CardType.DEBIT, 18),
        ("6221881234567890123", "PSBC", CardType.DEBIT, 19),
    ],
)
def test_well_known_prefixes(card: str, code: str, card_type: CardType, length: int) -> None:
    bank = bank_of(card)
    assert (bank.code, bank.card_type, bank.card_length) == (code, card_type, length)
    assert bank.bin == card[:6]
    assert bank.name_zh and bank.name_en


def test_the_longest_prefix_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    special = Bank("TESTBANK", "测试银行", "Test Bank", CardType.CREDIT, "62220299", 16)
    monkeypatch.setitem(bins._BY_PREFIX, "62220299", special)
    monkeypatch.setattr(bins, "_PREFIX_LENGTHS", [8, 6])
    assert bank_of("6222029912345678").code == "TESTBANK"
    assert bank_of("6222029812345678901").code == "ICBC"


@pytest.mark.parametrize("card", ["4111111111111111", "9999991234567890", "", "62220"])
def test_an_unknown_bin_is_refused(card: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        bank_of(card)
    assert refused.value.code == "card.bin.unknown"
    assert refused.value.field == "card_number"


def test_the_table_covers_the_major_banks_with_debit_and_credit() -> None:
    prefixes = [p for p, *_ in BIN_TABLE]
    assert len(prefixes) == len(set(prefixes))
    kinds = {(code, kind) for _, code, kind, _ in BIN_TABLE}
    for code in bins.BANK_CODES:
        assert (code, CardType.DEBIT) in kinds and (code, CardType.CREDIT) in kinds, code
    assert len(bins.BANK_CODES) == 15
