"""Access tokens for an institution: client credentials with private_key_jwt (RFC 7523 §2.2).

Each token request carries a fresh client assertion signed with the institution's own key
(short-lived, single-use ``jti``); the token is kept until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ecert.client.errors import ProblemError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)


SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _load(key: str | bytes | SigningKey) -> SigningKey:
    if isinstance(key, str | bytes):
        loaded = serialization.load_pem_private_key(
            key.encode() if isinstance(key, str) else key, password=None
        )
        if not isinstance(loaded, SigningKey):
            raise TypeError(f"unsupported key type {type(loaded).__name__}")
        return loaded
    return key


def _algorithm(key: SigningKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "EdDSA"


class PrivateKeyJwt:
    """Gets and caches the institution's access token.

    ``audience`` is what ecert accepts in the assertion's ``aud``: its issuer URL or its token
    endpoint URL (the default, from the client's base URL).
    """

    def __init__(
        self,
        client_id: str,
        private_key: str | bytes | SigningKey,
        *,
        audience: str | None = None,
        algorithm: str | None = None,
        assertion_ttl_s: int = 60,
        refresh_margin_s: float = 30.0,
    ) -> None:
        self.client_id = client_id
        self._key = _load(private_key)
        self._algorithm = algorithm or _algorithm(self._key)
        self._audience = audience
        self._assertion_ttl_s = assertion_ttl_s
        self._margin_s = refresh_margin_s
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def assertion(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + self._assertion_ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=self._algorithm)

    def forget(self) -> None:
        """Drop the cached token (ecert answered 401: revoked, keys rotated, clock moved)."""
        self._token = None

    async def token(self, http: httpx.AsyncClient) -> str:
        async with self._lock:  # concurrent calls share one token request
            if self._token is None or time.monotonic() >= self._expires:
                await self._fetch(http)
            assert self._token is not None
            return self._token

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        url = http.base_url.join(TOKEN_PATH)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(self._audience or str(url)),
        }
        started = time.monotonic()
        response = await http.post(url, data=form)
        if response.status_code != 200:
            raise ProblemError.from_response(response)
        body = response.json()
        lifetime = float(body.get("expires_in", 300))
        self._token = str(body["access_token"])
        self._expires = started + max(lifetime - self._margin_s, lifetime / 2)
