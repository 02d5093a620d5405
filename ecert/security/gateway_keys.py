"""Signing keys for the provincial gateways' ``_api_*`` headers (spec §8).

The spec's signature is HmacSHA1 keyed with the client's secret. ecert keeps client secrets only
as keyed hashes (``client_secrets``), and a hash cannot key an HMAC. So each institution client
gets a separate random gateway key, issued by ``ecert clients add`` / ``ecert clients
gateway-key``, shown once, and stored sealed with the PII cipher (AES-GCM, its own associated
data), because checking a signature needs the key itself. The client secret stays a hash; a
leaked gateway key signs gateway calls only and never gets an access token
(docs/national-interface.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.security.pii import PiiCipher
from ecert.security.repositories import institution_client

CONTEXT = "client.gateway-key"


def new_key() -> str:
    return secrets.token_urlsafe(32)


def seal(cipher: PiiCipher, key: str) -> bytes:
    return cipher.encrypt(key, context=CONTEXT)


def unseal(cipher: PiiCipher, blob: bytes) -> str:
    return cipher.decrypt(blob, context=CONTEXT)


def signature(key: str, pairs: dict[str, str]) -> str:
    """Base64(HmacSHA1(key, "k1=v1&k2=v2…")) over the pairs sorted by key, as the gateways sign."""
    message = "&".join(f"{k}={pairs[k]}" for k in sorted(pairs))
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def issue(session: AsyncSession, cipher: PiiCipher, client_id: str) -> str | None:
    """Give an institution client a new gateway key (replacing any); None if no such client."""
    client = await institution_client(session, client_id)
    if client is None:
        return None
    key = new_key()
    client.gateway_key_cipher = seal(cipher, key)
    return key
