"""Onboarding checks that need no provider (access-and-decisions §2): resident identity
numbers (GB 11643), age range, mainland mobile numbers, bank-card Luhn, and masking.

Pure functions: the date "today" is passed in, never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from microloan.errors import InvalidInput

_ID_RE = re.compile(r"^[1-9][0-9]{16}[0-9X]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # indexed by the weighted sum mod 11
_PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
_CARD_RE = re.compile(r"^[0-9]{16,19}$")


@dataclass(frozen=True, slots=True)
class IdentityNumber:
    """A checked 18-character resident identity number."""

    value: str
    region_code: str
    birth_date: date
    is_male: bool

    def age_on(self, on: date) -> int:
        had_birthday = (on.month, on.day) >= (self.birth_date.month, self.birth_date.day)
        return on.year - self.birth_date.year - (0 if had_birthday else 1)

    @property
    def masked(self) -> str:
        return mask(self.value)


def id_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    assert len(first17) == 17 and first17.isdigit()
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def parse_id_number(text: str, *, on: date, field: str = "id_number") -> IdentityNumber:
    """Check format, check character and birth date (not in the future); ``x`` reads as ``X``."""
    value = (text or "").strip().upper()
    if not _ID_RE.match(value):
        raise InvalidInput(
            "must be an 18-character resident identity number",
            code="identity.id_number.format",
            field=field,
        )
    if id_check_char(value[:17]) != value[17]:
        raise InvalidInput(
            "check character does not match (GB 11643)",
            code="identity.id_number.check_digit",
            field=field,
        )
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidInput(
            "birth date in the number is not a real date",
            code="identity.id_number.birth_date",
            field=field,
        ) from None
    if born > on or born.year < 1900:
        raise InvalidInput(
            "birth date in the number is not plausible",
            code="identity.id_number.birth_date",
            field=field,
        )
    return IdentityNumber(value, value[:6], born, int(value[16]) % 2 == 1)


def check_age(
    identity: IdentityNumber,
    *,
    on: date,
    min_age: int = 18,
    max_age: int = 60,
    field: str = "id_number",
) -> int:
    """The age on ``on``; refused outside the product's range (default 18–60)."""
    age = identity.age_on(on)
    if not min_age <= age <= max_age:
        raise InvalidInput(
            f"age {age} is outside the product's range {min_age}–{max_age}",
            code="identity.age_out_of_range",
            field=field,
        )
    return age


def check_phone(text: str, *, field: str = "phone") -> str:
    """A mainland mobile number: 11 digits starting 13–19 (a leading +86 is accepted)."""
    value = re.sub(r"[\s-]", "", text or "")
    value = value.removeprefix("+86")
    if not _PHONE_RE.match(value):
        raise InvalidInput(
            "must be an 11-digit mainland mobile number such as 13800138000",
            code="identity.phone.format",
            field=field,
        )
    return value


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by bank card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def check_card_number(text: str, *, field: str = "card_number") -> str:
    value = re.sub(r"\s", "", text or "")
    if not _CARD_RE.match(value):
        raise InvalidInput(
            "must be a bank card number of 16–19 digits", code="card.number.format", field=field
        )
    if not luhn_valid(value):
        raise InvalidInput(
            "card number fails its check digit (Luhn)", code="card.number.luhn", field=field
        )
    return value


def mask(value: str, *, keep_start: int = 4, keep_end: int = 4) -> str:
    """``440308199901011234`` → ``4403**********1234``; short values are masked whole."""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def mask_phone(value: str) -> str:
    """``13800138000`` → ``138****8000``."""
    return mask(value, keep_start=3, keep_end=4)
