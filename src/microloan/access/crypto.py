"""Personal data at rest: field encryption and keyed lookup hashes.

Identity numbers, phones and card numbers are stored as AES-256-GCM ciphertext (the
``cryptography`` package) with the column's name bound in as associated data, so a value copied
into another column does not decrypt. Lookups and uniqueness use a keyed HMAC-SHA256 "blind
index" of the value: equal values give equal hashes, but without the key a hash tells nothing
(an unkeyed hash of an 18-digit identity number would be brute-forced in minutes).

One master key (32 bytes) is configured; the encryption, index and signing keys are derived from
it with HKDF, each for one purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from microloan.errors import InvalidInput, MicroloanError

PREFIX = "v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class DataKeyError(MicroloanError):
    code = "config.data_key"


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


@dataclass(frozen=True)
class Vault:
    """Encrypts, decrypts and blind-indexes personal data with keys derived from one master."""

    _aead: AESGCM
    _index_key: bytes
    _signing_key: bytes

    @classmethod
    def from_master(cls, master: bytes) -> Vault:
        if len(master) != KEY_BYTES:
            raise DataKeyError(f"the data key must be {KEY_BYTES} bytes, got {len(master)}")
        return cls(
            AESGCM(_derive(master, b"microloan field encryption v1")),
            _derive(master, b"microloan blind index v1"),
            _derive(master, b"microloan signing v1"),
        )

    def encrypt(self, plaintext: str, *, column: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), column.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, column: str) -> str:
        if not token.startswith(PREFIX):
            raise DataKeyError(f"{column}: not a ciphertext of this platform")
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], column.encode())
        except InvalidTag:
            raise DataKeyError(f"{column}: cannot be decrypted with the configured key") from None
        return plain.decode()

    def blind(self, value: str, *, kind: str) -> str:
        """The lookup hash of ``value`` (hex); ``kind`` keeps equal strings of two kinds apart."""
        return hmac.new(self._index_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def sign(self, message: bytes, *, length: int = 32) -> bytes:
        return hmac.new(self._signing_key, message, hashlib.sha256).digest()[:length]


def load_master_key(key: str | None, key_file: str, *, may_create: bool) -> bytes:
    """The configured key (base64), else the key file; the file is created only if allowed."""
    if key:
        try:
            return base64.b64decode(key, validate=True)
        except ValueError:
            raise InvalidInput("must be base64 of 32 bytes", field="data_key") from None
    path = Path(key_file)
    if path.exists():
        return base64.b64decode(path.read_text().strip(), validate=True)
    if not may_create:
        raise DataKeyError(
            "no data key: set MICROLOAN_DATA_KEY (base64 of 32 random bytes) or "
            "MICROLOAN_DATA_KEY_FILE; personal data is never stored unencrypted"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(fresh).decode() + "\n")
    return fresh


def new_key_text() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()
