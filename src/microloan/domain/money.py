"""Money is an integer number of fen. Yuan appear only at the edges, as decimal strings."""

from __future__ import annotations

import re

from microloan.errors import InvalidInput

FEN_PER_YUAN = 100
_YUAN_RE = re.compile(r"^(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,2}))?$")


def parse_yuan(text: str | int, *, field: str = "amount") -> int:
    """``"1234.5"`` → 123450 fen. Refuses negatives, NaN, empty, non-numeric and >2 decimals."""
    if isinstance(text, bool):
        raise InvalidInput("must be a yuan amount such as 1234.50", field=field)
    if isinstance(text, int):
        if text < 0:
            raise InvalidInput("must not be negative", field=field)
        return text * FEN_PER_YUAN
    raw = text.strip() if isinstance(text, str) else ""
    if raw.startswith("-"):
        raise InvalidInput(f"must not be negative (got {text!r})", field=field)
    match = _YUAN_RE.match(raw)
    if match is None:
        if re.match(r"^[0-9]+\.[0-9]{3,}$", raw):
            raise InvalidInput(
                f"has more than two decimals (got {text!r}); amounts are whole fen", field=field
            )
        raise InvalidInput(f"must be a yuan amount such as 1234.50 (got {text!r})", field=field)
    whole, frac = match.group(1), (match.group(2) or "")
    return int(whole) * FEN_PER_YUAN + int(frac.ljust(2, "0"))


def format_yuan(fen: int) -> str:
    """123450 → ``"1234.50"``; negatives keep their sign."""
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{part:02d}"


def format_cny(fen: int) -> str:
    """123450 → ``"¥1,234.50"`` for people."""
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}¥{whole:,}.{part:02d}"


def round_half_up(numerator: int, denominator: int) -> int:
    """round(numerator / denominator) to the nearest integer, halves away from zero."""
    assert denominator > 0
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((2 * -numerator + denominator) // (2 * denominator))
