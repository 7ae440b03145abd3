"""Invitation codes that cannot be forged, and anyone can check (access-and-decisions §1).

A code is 5 random bytes followed by the first 5 bytes of their HMAC-SHA256 under the platform's
signing key, written in Crockford base32 as four groups of four (``7K2M-9QF3-PA1X-0D4R``). Only
the platform can make a code that checks: a guess passes with probability 2⁻⁴⁰. Reading is
forgiving the way people copy codes: case, spaces and dashes are ignored, and ``O``→``0``,
``I``/``L``→``1`` as Crockford's alphabet prescribes.
"""

from __future__ import annotations

import hmac

from microloan.access.crypto import Vault

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)} | {"O": 0, "I": 1, "L": 1}
BODY_BYTES = 5
MAC_BYTES = 5
CODE_CHARS = (BODY_BYTES + MAC_BYTES) * 8 // 5  # 16


def _encode(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    chars = [ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS))]
    text = "".join(chars)
    return "-".join(text[i : i + 4] for i in range(0, CODE_CHARS, 4))


def normalise(code: str) -> str | None:
    """The canonical form of a code as typed, or None if it cannot be one."""
    text = "".join(ch for ch in code.upper() if ch not in " -")
    if len(text) != CODE_CHARS or any(ch not in _DECODE for ch in text):
        return None
    n = 0
    for ch in text:
        n = (n << 5) | _DECODE[ch]
    return _encode(n.to_bytes(BODY_BYTES + MAC_BYTES, "big"))


def issue(vault: Vault, body: bytes) -> str:
    """A signed code from ``body`` (random bytes chosen by the caller)."""
    assert len(body) == BODY_BYTES, "the body is 5 random bytes"
    return _encode(body + vault.sign(b"referral:" + body, length=MAC_BYTES))


def is_genuine(vault: Vault, code: str) -> bool:
    """True when the code carries the platform's signature (it may still be unknown or used)."""
    canonical = normalise(code)
    if canonical is None:
        return False
    n = 0
    for ch in canonical.replace("-", ""):
        n = (n << 5) | _DECODE[ch]
    raw = n.to_bytes(BODY_BYTES + MAC_BYTES, "big")
    body, mac = raw[:BODY_BYTES], raw[BODY_BYTES:]
    return hmac.compare_digest(mac, vault.sign(b"referral:" + body, length=MAC_BYTES))
