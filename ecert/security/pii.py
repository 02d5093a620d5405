"""PII at rest: AES-256-GCM with a key id (so keys can rotate) and an HMAC-SHA256 lookup hash.

Both key sets rotate in two phases (docs/operations.md, *Rotate the PII keys*): a new key is
first deployed everywhere as decrypt-only (``ECERT_PII_KEYS`` lists it, ``ECERT_PII_ACTIVE_KEY``
still names the old one), and only then made active. A pod of the previous deployment can then
never meet a row sealed with a key it lacks; if it does anyway, it answers 503 naming the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ecert.config import ConfigurationError, Settings
from ecert.errors import ServiceUnavailable

_VERSION = 1
#: Key id of a hash key given bare (``ECERT_HASH_KEY=<base64url>``, the format before rotation).
BARE_HASH_KID = "h0"


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class KeyMaterialError(ConfigurationError):
    """Raised at start-up when keys are missing or malformed."""


class PiiKeyMissing(ServiceUnavailable):
    """A row is sealed with a PII key this process does not hold (a rotation out of order)."""

    code = "pii_key_missing"
    title = "A data key is missing on this node"

    def __init__(self, kid: str) -> None:
        super().__init__(
            f"this node does not hold PII key {kid!r}; deploy it (decrypt-only) to every node "
            "before making it active",
            retry_after=1,
        )
        self.kid = kid


def sealed_kid(blob: bytes) -> str:
    """The key id a ciphertext names (no decryption)."""
    if len(blob) < 2 or blob[0] != _VERSION:
        raise ValueError("unknown ciphertext version")
    return blob[2 : 2 + blob[1]].decode()


@dataclass(frozen=True)
class PiiCipher:
    """Encrypts personal data; the active key encrypts, every key decrypts.

    ``hash_key`` makes new lookup hashes; ``other_hash_keys`` (a hash key rotation in progress)
    are also tried when finding a row, until ``ecert pii rehash`` has moved every row.
    """

    keys: dict[str, bytes]
    active_kid: str
    hash_key: bytes
    other_hash_keys: tuple[bytes, ...] = field(default=())

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. ``"person.id"``) is bound as associated data."""
        nonce = os.urandom(12)
        kid = self.active_kid.encode()
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return bytes([_VERSION, len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        """Decrypt; :class:`PiiKeyMissing` (a 503) when the row names a key this process lacks."""
        kid = sealed_kid(blob)
        key = self.keys.get(kid)
        if key is None:
            raise PiiKeyMissing(kid)
        start = 2 + len(kid.encode())
        nonce = blob[start : start + 12]
        return AESGCM(key).decrypt(nonce, blob[start + 12 :], context.encode()).decode()

    def lookup_hash(self, normalised: str) -> str:
        """Keyed hash used to find a row by ID number without storing the number."""
        return hmac.new(self.hash_key, normalised.encode(), hashlib.sha256).hexdigest()

    def lookup_hashes(self, normalised: str) -> list[str]:
        """Every hash a row may still carry: the active key's first, then the old keys'."""
        return [
            hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()
            for key in (self.hash_key, *self.other_hash_keys)
        ]


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


def _pairs(text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for pair in text.split(","):
        kid, sep, value = pair.strip().partition(":")
        if not sep or not kid or kid in keys:
            raise ValueError(kid)
        keys[kid] = _b64d(value)
    return keys


def _active(keys: dict[str, bytes], named: str, variable: str) -> str:
    """The active key id: named explicitly, or the only key; never guessed from the order."""
    if named:
        if named not in keys:
            raise KeyMaterialError(
                f"{variable}={named!r} names no key (the keys have ids {', '.join(keys)})."
            )
        return named
    if len(keys) > 1:
        # Guessing "the first" is what broke rolling deploys: a new key listed first was active
        # on new pods while old pods could not read what they wrote.
        raise KeyMaterialError(
            f"several keys ({', '.join(keys)}): set {variable} to the one that encrypts; "
            "add a new key decrypt-only everywhere first, then make it active."
        )
    return next(iter(keys))


def _hash_keys(text: str, active: str) -> tuple[bytes, tuple[bytes, ...]]:
    keys = _pairs(text) if ":" in text else {BARE_HASH_KID: _b64d(text)}
    kid = _active(keys, active, "ECERT_HASH_ACTIVE_KEY")
    return keys[kid], tuple(k for name, k in keys.items() if name != kid)


def load_cipher(settings: Settings) -> PiiCipher:
    """Keys from settings when given, else from the key file.

    The key file is generated only in the embedded mode (SQLite, no ECERT_ENV): elsewhere every
    process must share one set of keys, so missing keys are an error naming what to set.
    """
    if settings.pii_keys:
        if not settings.hash_key:
            raise KeyMaterialError("ECERT_HASH_KEY is required with ECERT_PII_KEYS.")
        try:
            keys = _pairs(settings.pii_keys)
            hash_key, other_hash = _hash_keys(settings.hash_key, settings.hash_active_key)
        except (binascii.Error, ValueError):
            raise KeyMaterialError(
                "ECERT_PII_KEYS must be kid:base64url pairs (distinct ids) and ECERT_HASH_KEY "
                "base64url (or hid:base64url pairs)."
            ) from None
        active = _active(keys, settings.pii_active_key, "ECERT_PII_ACTIVE_KEY")
        return _checked(PiiCipher(keys, active, hash_key, other_hash), settings)
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
        active = settings.pii_active_key or data["active"]
        if "hash_keys" in data:
            hashes = {kid: _b64d(value) for kid, value in data["hash_keys"].items()}
            text = ",".join(f"{kid}:{_b64e(value)}" for kid, value in hashes.items())
            hash_key, other_hash = _hash_keys(text, settings.hash_active_key or data["hash_active"])
        else:
            hash_key, other_hash = _b64d(data["hash_key"]), ()
        cipher = PiiCipher(keys, active, hash_key, other_hash)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise KeyMaterialError(
            f"key file {path} is not readable as {{pii_keys: {{kid: key}}, active, hash_key}}."
        ) from None
    return _checked(cipher, settings)


def _checked(cipher: PiiCipher, settings: Settings) -> PiiCipher:
    if cipher.active_kid not in cipher.keys:
        raise KeyMaterialError(f"the active PII key id {cipher.active_kid!r} has no key.")
    hash_keys = (cipher.hash_key, *cipher.other_hash_keys)
    if any(len(k) != 32 for k in cipher.keys.values()) or any(len(k) < 32 for k in hash_keys):
        raise KeyMaterialError("PII keys must be 32 bytes (AES-256) and hash keys ≥ 32 bytes.")
    if cipher.other_hash_keys and not settings.audit_key:
        # Without it the audit key is derived from the active hash key and would change with it.
        raise KeyMaterialError(
            "a hash key rotation needs ECERT_AUDIT_KEY pinned first: set it to the output of "
            "`ecert pii audit-key` (run with the old hash key alone) on every process."
        )
    return cipher
