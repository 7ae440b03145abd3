"""Request signing of the channel gateway: the string signed, and the headers made."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from microloan.api.gateway import NONCE_RE, SIGNATURE_RE, sign, signed_headers, string_to_sign

SECRET = b"k" * 32
BODY = b'{"amount":"1000.00"}'


def test_the_string_signed_is_one_part_a_line() -> None:
    text = string_to_sign("post", "/v1/draws?x=1", "1769821200", "n-0001", "wechat", "wx_a", BODY)
    assert text.decode().split("\n") == [
        "POST",
        "/v1/draws?x=1",
        "1769821200",
        "n-0001",
        "wechat",
        "wx_a",
        hashlib.sha256(BODY).hexdigest(),
    ]


def test_sign_is_hex_hmac_sha256_of_that_string() -> None:
    message = string_to_sign("GET", "/v1/me", "1", "nonce-01", "qq", "q1", b"")
    expected = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    assert sign(SECRET, "GET", "/v1/me", "1", "nonce-01", "qq", "q1", b"") == expected
    assert SIGNATURE_RE.fullmatch(expected)


def test_every_part_changes_the_signature() -> None:
    base = ("GET", "/v1/me", "1", "nonce-01", "qq", "q1", b"")
    first = sign(SECRET, *base)
    for i in range(len(base)):
        changed = list(base)
        changed[i] = b"x" if isinstance(base[i], bytes) else f"{base[i]}x"
        assert sign(SECRET, *changed) != first  # type: ignore[arg-type]
    assert sign(b"j" * 32, *base) != first


def test_signed_headers() -> None:
    now = datetime(2026, 1, 31, 1, 0, tzinfo=UTC)
    h = signed_headers(SECRET, "POST", "/v1/draws", "wechat", "wx_a", BODY, now=now)
    assert h["X-Timestamp"] == str(int(now.timestamp()))
    assert NONCE_RE.fullmatch(h["X-Nonce"])
    assert h["X-Signature"] == sign(
        SECRET, "POST", "/v1/draws", h["X-Timestamp"], h["X-Nonce"], "wechat", "wx_a", BODY
    )
    again = signed_headers(SECRET, "POST", "/v1/draws", "wechat", "wx_a", BODY, now=now)
    assert again["X-Nonce"] != h["X-Nonce"]  # a fresh nonce each time
    fixed = signed_headers(SECRET, "GET", "/v1/me", "qq", "q", now=now, nonce="abcdefgh")
    assert fixed["X-Nonce"] == "abcdefgh" and fixed["X-Channel"] == "qq"
