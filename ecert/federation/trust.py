"""The trust list's keys: a code another province issued is checked here before it is routed.

Each peer's published QR keys (``/.well-known/jwks.json``) are cached for ``KEYS_TTL_S`` and
fetched again on an unknown ``kid`` (at most every ``REFETCH_S``). A code whose signature does
not verify with its issuer's keys, that has expired, or whose ``iss`` is not exactly the peer's
issuing area is refused here and never reaches the other province. The insured province checks
it again and is the authority on revoked keys and single use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.federation.client import ProvinceClient
from ecert.qr import codec

KEYS_TTL_S = 300.0
REFETCH_S = 10.0


@dataclass
class PeerKeys:
    """One peer's QR verification keys, as last fetched."""

    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    fetched_at: float = float("-inf")

    def load(self, document: Any) -> None:
        keys = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if jwk.get("ecert_use", "qr") != "qr" or jwk.get("kty") != "EC":
                continue
            if jwk.get("crv") != "P-256" or not isinstance(jwk.get("kid"), str):
                continue
            key = jwt.PyJWK(jwk, algorithm="ES256").key
            if isinstance(key, ec.EllipticCurvePublicKey):
                keys[jwk["kid"]] = key
        self.keys, self.fetched_at = keys, time.monotonic()


async def _key(peer: ProvinceClient, keys: PeerKeys, kid: str) -> ec.EllipticCurvePublicKey | None:
    age = time.monotonic() - keys.fetched_at
    if age > KEYS_TTL_S or (kid not in keys.keys and age > REFETCH_S):
        keys.load(await peer.public_json("/.well-known/jwks.json"))
    return keys.keys.get(kid)


async def check_code(
    peer: ProvinceClient, keys: PeerKeys, jws: str, kid: str, leeway_s: int
) -> None:
    """Refuse a code its issuer did not sign, or that is no longer valid (``QrError``s)."""
    key = await _key(peer, keys, kid)
    if key is None:
        raise codec.QrUnknownKey()
    codec.decode_jws(jws, key, now=int(time.time()), leeway_s=leeway_s, issuers={peer.area})
