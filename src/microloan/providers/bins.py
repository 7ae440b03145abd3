"""Bank identification from a card's BIN (发卡行识别码, the leading digits of the card number).

The table holds a handful of well-known prefixes per major Chinese bank, not every range: debit
(借记卡) and credit (贷记卡) cards, with the card length the issuer uses for that prefix. Bank
codes follow the short codes used by UnionPay acquirers and Alipay's card-information service
(``COMM`` is the Bank of Communications, ``SPABANK`` Ping An, ``CEB`` Everbright, ``HXBANK``
Huaxia, ``GDB`` China Guangfa). Every entry was cross-checked against the public BIN data set of
``hexindai/bcbc`` (``data/bin.csv``, itself compiled from issuers' published ranges); a prefix
that source files under another bank or type was left out.

Lookup takes the longest matching prefix, so a longer, more specific prefix can override a
shorter one. A BIN missing here is refused (``card.bin.unknown``): the platform only binds cards
of banks it can settle with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from microloan.errors import InvalidInput


class CardType(StrEnum):
    DEBIT = "debit"  # 借记卡
    CREDIT = "credit"  # 贷记卡


@dataclass(frozen=True, slots=True)
class Bank:
    """The issuing bank of a card and what its BIN says about the card."""

    code: str
    name_zh: str
    name_en: str
    card_type: CardType
    bin: str  # the matched prefix
    card_length: int  # digits of a card number under this prefix


_BANKS: dict[str, tuple[str, str]] = {
    "ICBC": ("中国工商银行", "Industrial and Commercial Bank of China"),
    "CCB": ("中国建设银行", "China Construction Bank"),
    "ABC": ("中国农业银行", "Agricultural Bank of China"),
    "BOC": ("中国银行", "Bank of China"),
    "COMM": ("交通银行", "Bank of Communications"),
    "CMB": ("招商银行", "China Merchants Bank"),
    "PSBC": ("中国邮政储蓄银行", "Postal Savings Bank of China"),
    "CITIC": ("中信银行", "China CITIC Bank"),
    "CIB": ("兴业银行", "Industrial Bank"),
    "SPDB": ("上海浦东发展银行", "Shanghai Pudong Development Bank"),
    "CMBC": ("中国民生银行", "China Minsheng Bank"),
    "SPABANK": ("平安银行", "Ping An Bank"),
    "CEB": ("中国光大银行", "China Everbright Bank"),
    "HXBANK": ("华夏银行", "Hua Xia Bank"),
    "GDB": ("广发银行", "China Guangfa Bank"),
}

_D, _C = CardType.DEBIT, CardType.CREDIT

# (prefix, bank code, card type, card length)
BIN_TABLE: tuple[tuple[str, str, CardType, int], ...] = (
    ("622202", "ICBC", _D, 19),
    ("622208", "ICBC", _D, 19),
    ("621226", "ICBC", _D, 19),
    ("621225", "ICBC", _D, 19),
    ("622230", "ICBC", _C, 16),
    ("622235", "ICBC", _C, 16),
    ("427020", "ICBC", _C, 16),
    ("621700", "CCB", _D, 19),
    ("622700", "CCB", _D, 19),
    ("622280", "CCB", _D, 19),
    ("436742", "CCB", _D, 19),
    ("622166", "CCB", _C, 16),
    ("622168", "CCB", _C, 16),
    ("489592", "CCB", _C, 16),
    ("622848", "ABC", _D, 19),
    ("622845", "ABC", _D, 19),
    ("622846", "ABC", _D, 19),
    ("621282", "ABC", _D, 19),
    ("622836", "ABC", _C, 16),
    ("622837", "ABC", _C, 16),
    ("404117", "ABC", _C, 16),
    ("621661", "BOC", _D, 19),
    ("621660", "BOC", _D, 19),
    ("621663", "BOC", _D, 19),
    ("601382", "BOC", _D, 19),
    ("456351", "BOC", _D, 19),
    ("622760", "BOC", _C, 16),
    ("622752", "BOC", _C, 16),
    ("409666", "BOC", _C, 16),
    ("622262", "COMM", _D, 19),
    ("622260", "COMM", _D, 19),
    ("622261", "COMM", _D, 19),
    ("458123", "COMM", _C, 16),
    ("520169", "COMM", _C, 16),
    ("622252", "COMM", _C, 16),
    ("622588", "CMB", _D, 16),
    ("621483", "CMB", _D, 16),
    ("621485", "CMB", _D, 16),
    ("621486", "CMB", _D, 16),
    ("622609", "CMB", _D, 16),
    ("439225", "CMB", _C, 16),
    ("439226", "CMB", _C, 16),
    ("622575", "CMB", _C, 16),
    ("622576", "CMB", _C, 16),
    ("518710", "CMB", _C, 16),
    ("621799", "PSBC", _D, 19),
    ("621098", "PSBC", _D, 19),
    ("622188", "PSBC", _D, 19),
    ("622150", "PSBC", _D, 19),
    ("622812", "PSBC", _C, 16),
    ("622810", "PSBC", _C, 16),
    ("621773", "CITIC", _D, 16),
    ("621771", "CITIC", _D, 16),
    ("622690", "CITIC", _D, 16),
    ("622696", "CITIC", _D, 16),
    ("622688", "CITIC", _C, 16),
    ("433666", "CITIC", _C, 16),
    ("622908", "CIB", _D, 18),
    ("622909", "CIB", _D, 18),
    ("622901", "CIB", _C, 16),
    ("622902", "CIB", _C, 16),
    ("451289", "CIB", _C, 16),
    ("622521", "SPDB", _D, 16),
    ("622522", "SPDB", _D, 16),
    ("622523", "SPDB", _D, 16),
    ("621791", "SPDB", _D, 16),
    ("622276", "SPDB", _C, 16),
    ("622277", "SPDB", _C, 16),
    ("456418", "SPDB", _C, 16),
    ("622615", "CMBC", _D, 16),
    ("622617", "CMBC", _D, 16),
    ("622622", "CMBC", _D, 16),
    ("621691", "CMBC", _D, 16),
    ("622600", "CMBC", _C, 16),
    ("622601", "CMBC", _C, 16),
    ("545392", "CMBC", _C, 16),
    ("622298", "SPABANK", _D, 16),
    ("621626", "SPABANK", _D, 19),
    ("623058", "SPABANK", _D, 19),
    ("622155", "SPABANK", _C, 16),
    ("622156", "SPABANK", _C, 16),
    ("622525", "SPABANK", _C, 16),
    ("622660", "CEB", _D, 16),
    ("622661", "CEB", _D, 16),
    ("622666", "CEB", _D, 16),
    ("621489", "CEB", _D, 16),
    ("622655", "CEB", _C, 16),
    ("622650", "CEB", _C, 16),
    ("406254", "CEB", _C, 16),
    ("622630", "HXBANK", _D, 16),
    ("622631", "HXBANK", _D, 16),
    ("622632", "HXBANK", _D, 16),
    ("623020", "HXBANK", _D, 16),
    ("622637", "HXBANK", _C, 16),
    ("622638", "HXBANK", _C, 16),
    ("622568", "GDB", _D, 19),
    ("621462", "GDB", _D, 19),
    ("622555", "GDB", _C, 16),
    ("622556", "GDB", _C, 16),
    ("406365", "GDB", _C, 16),
)


def _build() -> dict[str, Bank]:
    table: dict[str, Bank] = {}
    for prefix, code, card_type, length in BIN_TABLE:
        assert prefix.isdigit() and prefix not in table, prefix
        assert code in _BANKS and 16 <= length <= 19, (prefix, code, length)
        name_zh, name_en = _BANKS[code]
        table[prefix] = Bank(code, name_zh, name_en, card_type, prefix, length)
    return table


_BY_PREFIX = _build()
_PREFIX_LENGTHS = sorted({len(p) for p in _BY_PREFIX}, reverse=True)
BANK_CODES: tuple[str, ...] = tuple(_BANKS)


def bank_of(card_number: str, *, field: str = "card_number") -> Bank:
    """The bank of a card number by its longest known BIN prefix; unknown → ``card.bin.unknown``.

    Checks only the prefix: the caller checks format and Luhn first
    (``microloan.access.identity.check_card_number``).
    """
    digits = (card_number or "").strip()
    for length in _PREFIX_LENGTHS:
        bank = _BY_PREFIX.get(digits[:length])
        if bank is not None and len(digits) > length:
            return bank
    raise InvalidInput(
        "the card's bank is not recognised from its leading digits (BIN)",
        code="card.bin.unknown",
        field=field,
    )


def bins() -> tuple[Bank, ...]:
    """Every entry of the table, in table order (the simulator draws cards from it)."""
    return tuple(_BY_PREFIX[p] for p, *_ in BIN_TABLE)
