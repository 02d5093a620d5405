"""The scanner's offline verifier: checks QR codes against a cached key set and revocation feed.

Usage::

    verifier = OfflineVerifier.from_server("https://ecert.example")   # or .from_files(...)
    verdict = verifier.check(scanned_text)

Once the caches are warm a check needs no network; the key set is refetched when older than
``keys_max_age_s``, new feed pages when the last fetch is older than ``feed_max_age_s``, and an
unknown ``kid`` triggers at most one refetch of the key set per ``min_refetch_s``. A failed fetch
keeps what is held. When the newest feed held was signed more than ``feed_stale_s`` ago, a code
that would pass gets ``feed_stale`` instead: the scanner cannot know about recent suspensions.
"Now" is never earlier than the newest signed feed ``iat`` seen, so a device clock set back does
not revive expired codes; elapsed times also count on the monotonic clock.

Single use cannot be enforced offline: that is what the online ``POST /v1/verify`` adds.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from ecert.errors import EcertError
from ecert.qr import codec

Fetch = Callable[[str], bytes]
#: What a failed fetch can raise; the verifier keeps what it holds and says so through its age.
FETCH_ERRORS = (httpx.HTTPError, OSError, ValueError, KeyError, TypeError, jwt.PyJWTError)
FEED_STALE = "feed_stale"


@dataclass(frozen=True)
class Verdict:
    """``ok`` with the claims, or the stable code of the refusal."""

    ok: bool
    code: str
    claims: codec.QrClaims | None = None
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
    #: Refetch the key set when the last fetch is older than this.
    keys_max_age_s: float = 600.0
    #: Fetch new feed pages when the last fetch is older than this.
    feed_max_age_s: float = 120.0
    #: Refuse with ``feed_stale`` once the newest feed held was signed longer ago than this.
    feed_stale_s: float = 900.0
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    _keys: dict[str, Any] = field(default_factory=dict)
    _feed_keys: dict[str, Any] = field(default_factory=dict)
    _revoked: dict[str, _Revocation] = field(default_factory=dict)
    _revoked_kids: set[str] = field(default_factory=set)
    _seq: int = 0
    _last_fetch: float = float("-inf")
    # (wall, monotonic) times of the last key set and feed fetch attempts and feed load.
    _keys_at: tuple[float, float] = (float("-inf"), float("-inf"))
    _feed_at: tuple[float, float] = (float("-inf"), float("-inf"))
    _feed_iat: float | None = None
    _feed_loaded: float = float("-inf")

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
        """Fully offline: a saved key set and (optionally) a saved revocation feed.

        Without a feed nothing is known about revocations and no age is checked; with one, its
        signed ``iat`` must be younger than ``feed_stale_s``.
        """
        verifier = cls(fetch=None, **options)
        verifier.load_jwks(json.loads(jwks.read_text()))
        if feed is not None:
            verifier.load_feed(json.loads(feed.read_text()))
        return verifier

    def _now(self) -> float:
        """The device clock, but never before the newest signed feed time seen."""
        now = self.clock()
        return now if self._feed_iat is None else max(now, self._feed_iat)

    def _since(self, at: tuple[float, float]) -> float:
        # Whichever clock says more time passed: a wall clock set back cannot stop refreshes.
        return max(self.clock() - at[0], self.monotonic() - at[1])

    def _stamp(self) -> tuple[float, float]:
        return self.clock(), self.monotonic()

    def load_jwks(self, document: dict[str, Any]) -> None:
        keys: dict[str, Any] = {}
        feed_keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "kid" not in jwk:
                continue
            if jwk["kid"] in self._revoked_kids:  # a cached key set may still list it
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
        for revoked in payload.get("revoked_kids", []):
            self._revoked_kids.add(revoked)
            self._keys.pop(revoked, None)
            self._feed_keys.pop(revoked, None)
        iat = payload.get("iat")
        if isinstance(iat, int) and (self._feed_iat is None or iat >= self._feed_iat):
            self._feed_iat = float(iat)
            self._feed_loaded = self.monotonic()

    def refresh(self) -> None:
        """Refetch the key set and every feed page after the last sequence number held."""
        if self.fetch is None:
            return
        self._last_fetch = self.clock()
        self._refresh_keys()
        self._refresh_feed()

    def _refresh_keys(self) -> None:
        assert self.fetch is not None
        self._keys_at = self._stamp()
        self.load_jwks(json.loads(self.fetch("/.well-known/jwks.json")))

    def _refresh_feed(self) -> None:
        assert self.fetch is not None
        self._feed_at = self._stamp()
        while True:
            page = json.loads(self.fetch(f"/v1/revocations?since={self._seq}"))
            self.load_feed(page)
            if not page.get("more"):
                break

    def _refresh_when_due(self) -> None:
        """The schedule: each document refetched once older than its max age; failures keep
        what is held (and are retried at the next due time, not on every scan)."""
        if self.fetch is None:
            return
        with contextlib.suppress(*FETCH_ERRORS):
            if self._since(self._keys_at) > self.keys_max_age_s:
                self._refresh_keys()
        with contextlib.suppress(*FETCH_ERRORS):
            if self._since(self._feed_at) > self.feed_max_age_s:
                self._refresh_feed()

    def feed_age(self) -> float | None:
        """Seconds since the newest feed held was signed; None when none is expected."""
        if self._feed_iat is None:
            return None if self.fetch is None else float("inf")
        return max(self._now() - self._feed_iat, self.monotonic() - self._feed_loaded)

    def _key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None or kid in self._revoked_kids or self.fetch is None:
            return key
        if self.clock() - self._last_fetch >= self.min_refetch_s:
            with contextlib.suppress(*FETCH_ERRORS):
                self.refresh()
            key = self._keys.get(kid)
        return key

    def check(self, text: str) -> Verdict:
        self._refresh_when_due()
        try:
            jws, header = codec.open_code(text)
            key = self._key(header.kid)
            if key is None:
                raise codec.QrUnknownKey()
            claims = codec.decode_jws(
                jws, key, now=int(self._now()), leeway_s=self.skew_s, issuers=self.issuers
            )
        except EcertError as exc:
            return Verdict(False, exc.code, None, exc.detail)
        revocation = self._revoked.get(claims.sub)
        if revocation is not None:
            if revocation.status == "suspended":
                return Verdict(False, "ecert_suspended", claims)
            if revocation.status == "revoked" or claims.ver < revocation.min_version:
                return Verdict(False, "ecert_revoked", claims)
        age = self.feed_age()
        if age is not None and age > self.feed_stale_s:
            detail = f"the revocation feed is {int(age)} s old; connect to refresh it"
            return Verdict(False, FEED_STALE, claims, detail)
        return Verdict(True, "ok", claims)
