"""The scanner's offline verifier: checks QR codes against a cached key set and revocation feed.

Usage::

    verifier = OfflineVerifier.from_server("https://ecert.example")   # or .from_files(...)
    verdict = verifier.check(scanned_text)

Once the caches are warm no network is used; an unknown ``kid`` triggers at most one refetch of
the key set per ``min_refetch_s``. Single use cannot be enforced offline: that is what the online
``POST /v1/verify`` adds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from ecert import qrtoken
from ecert.errors import EcertError

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class Verdict:
    """``ok`` with the claims, or the stable code of the refusal."""

    ok: bool
    code: str
    claims: qrtoken.QrClaims | None = None
    detail: str = ""


@dataclass
class _Revocation:
    min_version: int
    status: str


@dataclass
class OfflineVerifier:
    fetch: Fetch | None
    issuers: Collection[str] | None = None
    skew_s: int = 5
    min_refetch_s: float = 30.0
    clock: Callable[[], float] = time.time
    _keys: dict[str, Any] = field(default_factory=dict)
    _feed_keys: dict[str, Any] = field(default_factory=dict)
    _revoked: dict[str, _Revocation] = field(default_factory=dict)
    _seq: int = 0
    _last_fetch: float = float("-inf")

    @classmethod
    def from_server(cls, base_url: str, **options: Any) -> OfflineVerifier:
        client = httpx.Client(base_url=base_url.rstrip("/"), timeout=5.0)

        def fetch(path: str) -> bytes:
            response = client.get(path)
            response.raise_for_status()
            return response.content

        verifier = cls(fetch=fetch, **options)
        verifier.refresh()
        return verifier

    @classmethod
    def from_files(cls, jwks: Path, feed: Path | None = None, **options: Any) -> OfflineVerifier:
        """Fully offline: a saved key set and (optionally) a saved revocation feed."""
        verifier = cls(fetch=None, **options)
        verifier.load_jwks(json.loads(jwks.read_text()))
        if feed is not None:
            verifier.load_feed(json.loads(feed.read_text()))
        return verifier

    def load_jwks(self, document: dict[str, Any]) -> None:
        keys: dict[str, Any] = {}
        feed_keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "kid" not in jwk:
                continue
            target = feed_keys if jwk.get("ecert_use") == "feed" else keys
            target[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="ES256").key
        self._keys, self._feed_keys = keys, feed_keys

    def load_feed(self, document: dict[str, Any]) -> None:
        """Apply one feed page, trusting only what its signature covers."""
        token = document["jws"]
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._feed_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise ValueError("the revocation feed is not signed by a published feed key")
        payload = jwt.decode(token, key, algorithms=["ES256"], options={"verify_iat": False})
        for entry in payload["entries"]:
            if entry["seq"] <= self._seq:
                continue
            self._revoked[entry["sub"]] = _Revocation(entry["min_version"], entry["status"])
            self._seq = entry["seq"]

    def refresh(self) -> None:
        """Refetch the key set and every feed page after the last sequence number held."""
        if self.fetch is None:
            return
        self._last_fetch = self.clock()
        self.load_jwks(json.loads(self.fetch("/.well-known/jwks.json")))
        while True:
            page = json.loads(self.fetch(f"/v1/revocations?since={self._seq}"))
            self.load_feed(page)
            if not page.get("more"):
                break

    def _key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        stale_enough = self.clock() - self._last_fetch >= self.min_refetch_s
        if key is None and self.fetch is not None and stale_enough:
            self.refresh()
            key = self._keys.get(kid)
        return key

    def check(self, text: str) -> Verdict:
        try:
            jws, header = qrtoken.open_code(text)
            key = self._key(header.kid)
            if key is None:
                raise qrtoken.QrUnknownKey()
            claims = qrtoken.decode_jws(
                jws, key, now=int(self.clock()), leeway_s=self.skew_s, issuers=self.issuers
            )
        except EcertError as exc:
            return Verdict(False, exc.code, None, exc.detail)
        revocation = self._revoked.get(claims.sub)
        if revocation is not None:
            if revocation.status == "suspended":
                return Verdict(False, "ecert_suspended", claims)
            if revocation.status == "revoked" or claims.ver < revocation.min_version:
                return Verdict(False, "ecert_revoked", claims)
        return Verdict(True, "ok", claims)
