"""Operator passwords: Argon2id (``argon2-cffi``, RFC 9106 parameters), never stored in clear."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from microloan.errors import InvalidInput

MIN_LENGTH = 12
_HASHER = PasswordHasher()  # argon2id, 64 MiB, 3 passes, 4 lanes


def check_strength(password: str) -> None:
    """At least 12 characters with letters and digits; the rule names the field."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"at least {MIN_LENGTH} characters", field="password")
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise InvalidInput("must contain letters and digits", field="password")


def hash_password(password: str) -> str:
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
