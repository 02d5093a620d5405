"""PII at rest: AES-256-GCM with a key id (so keys can rotate) and an HMAC-SHA256 lookup hash."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ecert.config import ConfigurationError, Settings

_VERSION = 1


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class KeyMaterialError(ConfigurationError):
    """Raised at start-up when keys are missing or malformed."""


@dataclass(frozen=True)
class PiiCipher:
    """Encrypts personal data; the first key encrypts, every key decrypts."""

    keys: dict[str, bytes]
    active_kid: str
    hash_key: bytes

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. ``"person.id"``) is bound as associated data."""
        nonce = os.urandom(12)
        kid = self.active_kid.encode()
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return bytes([_VERSION, len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if not blob or blob[0] != _VERSION:
            raise ValueError("unknown ciphertext version")
        kid_len = blob[1]
        kid = blob[2 : 2 + kid_len].decode()
        nonce = blob[2 + kid_len : 14 + kid_len]
        return (
            AESGCM(self.keys[kid]).decrypt(nonce, blob[14 + kid_len :], context.encode()).decode()
        )

    def lookup_hash(self, normalised: str) -> str:
        """Keyed hash used to find a row by ID number without storing the number."""
        return hmac.new(self.hash_key, normalised.encode(), hashlib.sha256).hexdigest()


def _generate_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "pii_keys": {"k1": _b64e(secrets.token_bytes(32))},
        "active": "k1",
        "hash_key": _b64e(secrets.token_bytes(32)),
    }
    # O_EXCL: two workers starting together must not both write a key file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)


def load_cipher(settings: Settings) -> PiiCipher:
    """Keys from settings when given, else from the key file.

    The key file is generated only in the embedded mode (SQLite, no ECERT_ENV): elsewhere every
    process must share one set of keys, so missing keys are an error naming what to set.
    """
    if settings.pii_keys:
        if not settings.hash_key:
            raise KeyMaterialError("ECERT_HASH_KEY is required with ECERT_PII_KEYS.")
        try:
            keys: dict[str, bytes] = {}
            order: list[str] = []
            for pair in settings.pii_keys.split(","):
                kid, _, value = pair.strip().partition(":")
                keys[kid] = _b64d(value)
                order.append(kid)
            hash_key = _b64d(settings.hash_key)
        except (binascii.Error, ValueError):
            raise KeyMaterialError(
                "ECERT_PII_KEYS must be kid:base64url pairs and ECERT_HASH_KEY base64url."
            ) from None
        return _checked(PiiCipher(keys, order[0], hash_key))
    path = Path(settings.key_file or Path(settings.data_dir) / "keys.json")
    if not path.exists():
        if settings.key_file:
            raise KeyMaterialError(f"key file {path} (ECERT_KEY_FILE) does not exist.")
        if not settings.embedded:
            raise KeyMaterialError(
                "outside the embedded mode keys are never generated: set ECERT_PII_KEYS and "
                "ECERT_HASH_KEY (or ECERT_KEY_FILE) to the keys every process shares."
            )
        with contextlib.suppress(FileExistsError):  # another worker made it first
            _generate_key_file(path)
    try:
        data = json.loads(path.read_text())
        keys = {kid: _b64d(value) for kid, value in data["pii_keys"].items()}
        return _checked(PiiCipher(keys, data["active"], _b64d(data["hash_key"])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise KeyMaterialError(
            f"key file {path} is not readable as {{pii_keys: {{kid: key}}, active, hash_key}}."
        ) from None


def _checked(cipher: PiiCipher) -> PiiCipher:
    if cipher.active_kid not in cipher.keys:
        raise KeyMaterialError("the active PII key id has no key.")
    if any(len(k) != 32 for k in cipher.keys.values()) or len(cipher.hash_key) < 32:
        raise KeyMaterialError("PII keys must be 32 bytes (AES-256) and the hash key ≥ 32 bytes.")
    return cipher
