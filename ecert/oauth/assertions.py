"""Checking client and person assertions (RFC 7523), naming the rule a refused one broke.

A refusal says which rule failed (lifetime, audience, issuer, subject, replayed ``jti``,
signature, algorithm …) so that an integrator can fix their client; it never echoes the
assertion, a key or a secret.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ecert.errors import ValidationFailed
from ecert.qr.jws import unverified_header
from ecert.server.runtime import Runtime

#: Signing algorithms a registered public key may use (see ``algorithms_for``).
PUBLIC_KEY_ALGORITHMS = ("ES256", "PS256", "RS256", "EdDSA")
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})


class AssertingClient(Protocol):
    """The client an assertion comes from: its id, and its public key if it has one."""

    @property
    def client_id(self) -> str: ...

    @property
    def public_key_pem(self) -> str | None: ...


class AssertionRefused(Exception):
    """Raised when an assertion breaks a rule; ``rule`` names it, ``args[0]`` explains it."""

    def __init__(self, rule: str, description: str) -> None:
        super().__init__(f"assertion refused ({rule}): {description}")
        self.rule = rule


def algorithms_for(key: Any) -> list[str]:
    """Pin the algorithm to the registered key's type: a header cannot pick a weaker one."""
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ["ES256"]
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return ["PS256", "RS256"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"]
    raise ValidationFailed("public keys must be P-256, RSA ≥ 2048 or Ed25519")


def _refusal(exc: jwt.PyJWTError) -> AssertionRefused:
    # Most specific first: several PyJWT errors subclass others.
    rules: list[tuple[type[jwt.PyJWTError], str, str]] = [
        (jwt.InvalidSignatureError, "signature", "the signature does not verify"),
        (jwt.InvalidAlgorithmError, "algorithm", "the alg is not one the registered key uses"),
        (jwt.ExpiredSignatureError, "lifetime", "the assertion has expired (exp)"),
        (jwt.ImmatureSignatureError, "lifetime", "the assertion is not valid yet (nbf/iat)"),
        (jwt.InvalidAudienceError, "audience", "aud must be the issuer URL or token endpoint"),
        (jwt.InvalidIssuerError, "issuer", "iss must be the client id"),
        (jwt.InvalidIssuedAtError, "lifetime", "iat must be a number"),
        (jwt.DecodeError, "malformed", "not a well-formed signed JWT"),
    ]
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AssertionRefused("missing_claim", f"the '{exc.claim}' claim is required")
    for kind, rule, description in rules:
        if isinstance(exc, kind):
            return AssertionRefused(rule, description)
    return AssertionRefused("malformed", "the assertion could not be read")


@functools.lru_cache(maxsize=1024)
def _public_key(pem: str) -> Any:
    """A client's public key from its PEM, parsed once a worker (public data: a changed key is
    another PEM, another entry)."""
    return load_pem_public_key(pem.encode())


def decode(
    runtime: Runtime,
    client: AssertingClient,
    token: str,
    *,
    secret: str | None,
    subject: str | None,
    max_ttl_s: int,
) -> dict[str, Any]:
    """The verified claims of ``client``'s assertion, or :class:`AssertionRefused`.

    Args:
        secret: the client secret, for HS256 person assertions of secret clients.
        subject: the ``sub`` required (a client assertion's is the client id).
        max_ttl_s: the longest ``exp − iat`` allowed.
    """
    settings = runtime.settings
    if client.public_key_pem:
        key: Any = _public_key(client.public_key_pem)
        algorithms = algorithms_for(key)
    elif secret is not None:
        key, algorithms = secret, ["HS256"]
    else:
        raise AssertionRefused("key", "the client has no key to verify assertions with")
    try:
        # The header alone (ecert.qr.jws): PyJWT's own reader decodes and checks every segment,
        # a Python step a character, and jwt.decode below does all of that again anyway.
        header = unverified_header(token)
    except ValueError as exc:
        raise AssertionRefused("malformed", "not a well-formed signed JWT") from exc
    try:
        if _FORBIDDEN_HEADERS & header.keys():
            raise AssertionRefused("header", "jku, x5u, jwk, x5c and crit are not accepted")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=[settings.issuer_url, token_endpoint(settings.issuer_url)],
            issuer=client.client_id,
            leeway=settings.leeway_s,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise _refusal(exc) from exc
    lifetime = claims["exp"] - claims["iat"]
    if lifetime > max_ttl_s:
        raise AssertionRefused(
            "lifetime", f"exp − iat is {lifetime} s; at most {max_ttl_s} s is accepted"
        )
    if claims["iat"] > time.time() + settings.leeway_s:
        raise AssertionRefused("lifetime", "iat is in the future")
    if subject is not None and claims["sub"] != subject:
        raise AssertionRefused("subject", "sub must equal the client id")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise AssertionRefused("jti", "jti must be a string of 8 to 128 characters")
    return claims


def token_endpoint(issuer_url: str) -> str:
    """The token endpoint's URL under the issuer URL (also an accepted ``aud``)."""
    return issuer_url.rstrip("/") + "/oauth/token"
