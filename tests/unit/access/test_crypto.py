"""Field encryption, blind index, signing keys; operator password hashing; signed codes."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microloan.access import referral_codes
from microloan.access.crypto import DataKeyError, Vault, load_master_key
from microloan.access.passwords import hash_password, needs_rehash, verify_password
from microloan.errors import InvalidInput

VAULT = Vault.from_master(b"\x01" * 32)
OTHER = Vault.from_master(b"\x02" * 32)


@given(st.text(max_size=40))
def test_encrypt_round_trip_and_never_shows_the_plaintext(text: str) -> None:
    token = VAULT.encrypt(text, column="identity.id_number")
    assert VAULT.decrypt(token, column="identity.id_number") == text
    if len(text) >= 4:
        assert text not in token


def test_ciphertext_is_bound_to_its_column_and_key() -> None:
    token = VAULT.encrypt("110105194912310029", column="identity.id_number")
    assert token != VAULT.encrypt("110105194912310029", column="identity.id_number")  # nonce
    with pytest.raises(DataKeyError):
        VAULT.decrypt(token, column="identity.phone")
    with pytest.raises(DataKeyError):
        OTHER.decrypt(token, column="identity.id_number")


def test_blind_index_is_keyed_and_kind_separated() -> None:
    a = VAULT.blind("13800138000", kind="phone")
    assert a == VAULT.blind("13800138000", kind="phone")
    assert a != VAULT.blind("13800138000", kind="card")
    assert a != OTHER.blind("13800138000", kind="phone")


def test_key_loading(tmp_path: Path) -> None:
    text = base64.b64encode(os.urandom(32)).decode()
    assert load_master_key(text, str(tmp_path / "none"), may_create=False) == base64.b64decode(text)
    with pytest.raises(InvalidInput, match="data_key"):
        load_master_key("not base64!", str(tmp_path / "none"), may_create=False)
    with pytest.raises(DataKeyError, match="MICROLOAN_DATA_KEY"):
        load_master_key(None, str(tmp_path / "missing"), may_create=False)
    made = load_master_key(None, str(tmp_path / "k" / "data.key"), may_create=True)
    assert len(made) == 32
    assert (tmp_path / "k" / "data.key").stat().st_mode & 0o777 == 0o600
    assert load_master_key(None, str(tmp_path / "k" / "data.key"), may_create=False) == made
    with pytest.raises(DataKeyError, match="32 bytes"):
        Vault.from_master(b"short")


def test_passwords_hash_with_argon2id_and_verify() -> None:
    stored = hash_password("correct horse 42")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse 42")
    assert not verify_password(stored, "correct horse 43")
    assert not verify_password("garbage", "correct horse 42")
    assert not needs_rehash(stored)


@pytest.mark.parametrize(
    ("password", "rule"), [("short1", "12 characters"), ("onlylettersxx", "letters and digits")]
)
def test_weak_passwords_are_refused(password: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule) as err:
        hash_password(password)
    assert err.value.field == "password"


@given(st.binary(min_size=5, max_size=5))
def test_codes_check_and_survive_how_people_type_them(body: bytes) -> None:
    code = referral_codes.issue(VAULT, body)
    assert len(code) == 19 and code.count("-") == 3
    assert referral_codes.is_genuine(VAULT, code)
    assert referral_codes.is_genuine(VAULT, " " + code.lower().replace("-", "") + " ")
    assert referral_codes.normalise(code.replace("0", "O").replace("1", "I")) == code
    assert not referral_codes.is_genuine(OTHER, code)


@given(st.binary(min_size=5, max_size=5), st.integers(0, 15), st.integers(1, 31))
def test_any_changed_character_is_caught(body: bytes, position: int, delta: int) -> None:
    code = referral_codes.issue(VAULT, body).replace("-", "")
    alphabet = referral_codes.ALPHABET
    changed = alphabet[(alphabet.index(code[position]) + delta) % 32]
    forged = code[:position] + changed + code[position + 1 :]
    assert not referral_codes.is_genuine(VAULT, forged)


@pytest.mark.parametrize("text", ["", "ABC", "UUUU-UUUU-UUUU-UUUU", "7K2M-9QF3-PA1X-0D4R-XX"])
def test_malformed_codes_are_not_genuine(text: str) -> None:
    assert not referral_codes.is_genuine(VAULT, text)
