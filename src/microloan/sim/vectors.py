"""Vectorised helpers of the generator: digit matrices, check characters, opaque ids.

Everything works on whole columns at once (numpy arrays of shape ``(n,)`` or ``(n, width)``),
so a million people take seconds. The scalar rules they implement live in
``microloan.access.identity`` (GB 11643, Luhn); the tests check the two agree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

Ints = npt.NDArray[np.int64]
Digits = npt.NDArray[np.uint8]
Words = npt.NDArray[np.uint64]

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_FOUR_DIGITS = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10).astype(np.uint8)
_HEX_PAIRS = np.frombuffer(
    b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint8
).reshape(256, 2)


def digits_of(values: Ints, width: int) -> Digits:
    """Each value as ``width`` decimal digits, most significant first (zero-padded).

    Four digits at a time through a lookup table: a few divisions per value, not one per digit.
    """
    assert values.min(initial=0) >= 0 and width <= 18
    groups = -(-width // 4)
    chunks = [_FOUR_DIGITS[(values // 10 ** (4 * k)) % 10_000] for k in range(groups - 1, -1, -1)]
    return np.concatenate(chunks, axis=1)[:, 4 * groups - width :]


def text_of(chars: npt.NDArray[np.uint8], name: str) -> pl.Series:
    """An ``(n, width)`` matrix of ASCII codes as a string column."""
    width = chars.shape[1]
    packed = np.ascontiguousarray(chars, dtype=np.uint8).view(f"S{width}").ravel()
    return pl.Series(name, packed).cast(pl.Utf8)


def ascii_digits(digits: Digits) -> npt.NDArray[np.uint8]:
    return (digits + ord("0")).astype(np.uint8)


def id_check_chars(first17: Digits) -> npt.NDArray[np.uint8]:
    """The GB 11643 check character (ASCII code) of each row of 17 digits."""
    assert first17.shape[1] == 17
    total = first17.astype(np.int64) @ _ID_WEIGHTS
    result: npt.NDArray[np.uint8] = _ID_CHECK[total % 11]
    return result


def luhn_check_digits(body: Digits) -> Digits:
    """The Luhn digit to append to each row of digits (the rightmost body digit is doubled)."""
    d = body.astype(np.int64)[:, ::-1]
    doubled = d[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = doubled.sum(axis=1) + d[:, 1::2].sum(axis=1)
    check: Digits = ((10 - total % 10) % 10).astype(np.uint8)
    return check


def duplicate_positions(keys: Ints) -> Ints:
    """Positions holding a key already seen at an earlier position (stable: first one kept)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeat = ordered[1:] == ordered[:-1]
    return np.sort(order[1:][repeat]).astype(np.int64)


def number_of(digits: Digits) -> Ints:
    """Rows of at most 18 digits as integers (keys for ``duplicate_positions``)."""
    assert digits.shape[1] <= 18
    powers = 10 ** np.arange(digits.shape[1] - 1, -1, -1, dtype=np.int64)
    result: Ints = digits.astype(np.int64) @ powers
    return result


def mix64(values: Words, key: int) -> Words:
    """A keyed bijection of 64-bit words (the splitmix64 finaliser after adding ``key``).

    Distinct inputs give distinct outputs, so opaque ids made from row numbers never collide.
    """
    with np.errstate(over="ignore"):
        x = values + np.uint64(key & 0xFFFF_FFFF_FFFF_FFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hex_ids(words: Words, prefix: str, name: str) -> pl.Series:
    """``prefix`` followed by the 16 hex digits of each word, e.g. ``wx_3f9a…``."""
    octets = words.astype(">u8").view(np.uint8).reshape(len(words), 8)
    hex_chars = _HEX_PAIRS[octets].reshape(len(words), 16)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.concatenate([np.broadcast_to(head, (len(words), len(head))), hex_chars], axis=1)
    return text_of(chars, name)
