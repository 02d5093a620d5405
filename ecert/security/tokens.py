"""Access tokens (RFC 9068 JWTs) signed by ``access`` keys, which never sign QR codes."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from ecert.config import Settings
from ecert.errors import Unauthorized
from ecert.qr.jws import unverified_header
from ecert.security.keys import KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 media type, not a password
ALGORITHMS = ["ES256"]
_KID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client, and for person-scoped tokens the person it acts for."""

    client_id: str
    kind: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    person_id: uuid.UUID | None = None
    institution_code: str | None = None
    #: The client's own quota (requests a minute), carried as the ``rlm`` claim so the rate
    #: limiter needs no database read; None: the configured default.
    rate_limit: int | None = None
    #: A named member of agency staff (console sign-in): their role and name, the national
    #: envelope's ``opter_name``; the login is the client id after ``staff:``.
    staff_role: str | None = None
    staff_name: str | None = None

    @property
    def ref(self) -> str:
        """A log- and audit-safe reference (client id, never personal data)."""
        return self.client_id


def mint_access_token(
    ring: KeyRing,
    settings: Settings,
    principal: Principal,
    *,
    ttl_s: int,
    now: int | None = None,
) -> str:
    key = ring.signer("access")
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": settings.issuer_url,
        "aud": settings.api_audience,
        "sub": principal.client_id,
        "client_id": principal.client_id,
        "knd": principal.kind,
        "scope": " ".join(sorted(principal.scopes)),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(12),
    }
    if principal.person_id is not None:
        claims["psn"] = str(principal.person_id)
    if principal.institution_code is not None:
        claims["ins"] = principal.institution_code
    if principal.rate_limit is not None:
        claims["rlm"] = principal.rate_limit
    if principal.staff_role is not None:
        claims["stf"] = principal.staff_role
        claims["opn"] = principal.staff_name
    return jwt.encode(
        claims,
        key.private,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def read_kid(token: str, expected_typ: str) -> str:
    """The ``kid`` of a token whose header is acceptable; header key material is refused."""
    try:
        header = unverified_header(token)
    except ValueError as exc:
        raise Unauthorized("the access token is malformed") from exc
    if header.get("alg") not in ALGORITHMS or header.get("typ") != expected_typ:
        raise Unauthorized("the access token has the wrong algorithm or type")
    if {"jku", "x5u", "jwk", "x5c", "crit"} & header.keys():
        raise Unauthorized("the access token carries forbidden header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 16 or not set(kid) <= _KID_CHARS:
        raise Unauthorized("the access token has no usable key id")
    return kid


def verify_access_token(ring: KeyRing, settings: Settings, token: str) -> Principal:
    """Check signature, type, issuer, audience, expiry; return the principal."""
    return _check_access_token(ring, settings, token)[0]


def _check_access_token(
    ring: KeyRing, settings: Settings, token: str
) -> tuple[Principal, str, int]:
    """The principal, the key id and the expiry of a token that checks out."""
    kid = read_kid(token, ACCESS_TOKEN_TYPE)
    key = ring.verifier("access", kid)
    if key is None:
        raise Unauthorized("the access token's key is unknown")
    try:
        claims = jwt.decode(
            token,
            key.public,
            algorithms=ALGORITHMS,
            audience=settings.api_audience,
            issuer=settings.issuer_url,
            leeway=settings.leeway_s,
            options={"require": ["iss", "aud", "sub", "exp", "iat", "jti", "knd"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the access token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("the access token is not valid") from exc
    person = claims.get("psn")
    quota = claims.get("rlm")
    principal = Principal(
        client_id=str(claims["sub"]),
        kind=str(claims["knd"]),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        person_id=uuid.UUID(person) if isinstance(person, str) else None,
        institution_code=claims.get("ins") if isinstance(claims.get("ins"), str) else None,
        rate_limit=quota if isinstance(quota, int) and quota > 0 else None,
        staff_role=_text(claims.get("stf")),
        staff_name=_text(claims.get("opn")),
    )
    return principal, kid, int(claims["exp"])


class VerifiedTokens:
    """A worker's memory of access tokens whose signature and claims it has already checked.

    A channel or hospital sends the same token on every request for its lifetime (minutes): its
    ES256 verify was the largest piece of CPU in a mint. A hit needs the identical token text
    (the whole signed string is the key, so nothing unverified is ever trusted), is refused once
    the token expires (the same leeway as ``jwt.decode``), and once its signing key is no longer
    in the ring (a revoked key: the ring reloads within ``keys.VERSION_CHECK_S``). Client
    disablement is checked per request after this, as before. Bounded: the oldest entries go
    first when full (a token flood costs memory up to the bound, and each entry was a valid
    token). docs/security.md ("Verified access tokens are remembered").
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._entries: dict[str, tuple[Principal, str, int]] = {}

    def remembered(self, ring: KeyRing, settings: Settings, token: str) -> Principal | None:
        """The principal of a token already checked, still unexpired and its key still in the
        ring; ``None`` otherwise (a stale entry is dropped)."""
        found = self._entries.get(token)
        if found is None:
            return None
        principal, kid, exp = found
        if int(time.time()) <= exp + settings.leeway_s and ring.verifier("access", kid) is not None:
            return principal
        del self._entries[token]
        return None

    def verify(self, ring: KeyRing, settings: Settings, token: str) -> Principal:
        principal = self.remembered(ring, settings, token)
        if principal is not None:
            return principal
        principal, kid, exp = _check_access_token(ring, settings, token)
        if len(self._entries) >= self._size:
            # dicts keep insertion order: drop the oldest tenth at once, not one per insert
            for stale in list(itertools.islice(self._entries, self._size // 10 or 1)):
                del self._entries[stale]
        self._entries[token] = (principal, kid, exp)
        return principal


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
