"""Client registration, client authentication and the two grants of the token endpoint."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.clock import utcnow
from ecert.db.models import Client, Institution
from ecert.errors import InvalidClient, InvalidGrant, OAuthError, ValidationFailed
from ecert.identity import names_match, parse_id_number
from ecert.oauth import assertions, repositories
from ecert.oauth.assertions import AssertionRefused, algorithms_for
from ecert.oauth.repositories import AssertedPerson, AuthClient
from ecert.oauth.schemas import (
    ASSERTION_TYPE_JWT,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    ServerMetadata,
    TokenRequest,
    TokenResponse,
)
from ecert.persons import open_name
from ecert.security import client_secrets
from ecert.security.audit import acting, audit_values, concerning, refusal_reason
from ecert.security.pii import PiiCipher
from ecert.security.province import province_scope
from ecert.security.tokens import Principal, mint_access_token
from ecert.server.ratelimit import RateLimiter
from ecert.server.runtime import Runtime

#: Scopes a client of each kind holds when registered without explicit ones.
DEFAULT_SCOPES = {
    "channel": "person",
    "institution": "verify settle",
    "agency": "agency",
    "province": "federation",
}


class UnsupportedGrant(OAuthError):
    """Raised for a grant type the token endpoint does not offer."""

    status = 400
    code = "unsupported_grant_type"
    title = "Unsupported grant type"
    oauth_error = "unsupported_grant_type"


class IdentityMismatch(InvalidGrant):
    """Raised when no insured person has the asserted ID number and name.

    One answer whether the number is unknown or the name is wrong: two answers would let any
    channel learn who is insured here.
    """

    code = "identity_mismatch"
    title = "The asserted identity does not match the register"


def check_public_key(pem: str) -> None:
    """Refuse a public key ecert could not verify assertions with."""
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValidationFailed("the public key is not a PEM public key") from exc
    algorithms_for(key)


async def register_client(
    session: AsyncSession,
    *,
    cipher: PiiCipher,
    kind: str,
    name: str,
    code: str | None = None,
    level: str | None = None,
    area: str | None = None,
    designated: bool = True,
    public_key_pem: str | None = None,
    scopes: str | None = None,
    rate_limit: int | None = None,
) -> tuple[Client, str | None]:
    """Create a client; institutions get (or reuse) their institution row by code."""
    if kind not in DEFAULT_SCOPES:
        raise ValidationFailed("kind must be channel, institution, agency or province")
    if rate_limit is not None and rate_limit < 1:
        raise ValidationFailed("a rate limit is at least 1 request a minute")
    institution = None
    if kind == "institution":
        if not code or not level or not area:
            raise ValidationFailed("institution clients need --code, --level and --area")
        institution = await repositories.institution_by_code(session, code)
        if institution is None:
            institution = Institution(
                code=code,
                name=name,
                kind="pharmacy" if code.upper().startswith("P") else "hospital",
                level=level,
                area=area,
                designated=designated,
            )
            session.add(institution)
    if kind == "province":
        scopes = _province_scopes(area, public_key_pem, scopes)
    secret = None if public_key_pem else secrets.token_urlsafe(32)
    if public_key_pem:
        check_public_key(public_key_pem)
    client = Client(
        client_id=f"{kind[:3]}_{secrets.token_hex(8)}",
        kind=kind,
        name=name,
        secret_hash=client_secrets.hash_secret(secret_key(cipher), secret) if secret else None,
        public_key_pem=public_key_pem,
        scopes=scopes if scopes is not None else DEFAULT_SCOPES[kind],
        institution=institution,
        rate_limit=rate_limit,
    )
    session.add(client)
    await session.flush()
    return client, secret


def _province_scopes(area: str | None, public_key_pem: str | None, scopes: str | None) -> str:
    """Another province's ecert: private_key_jwt only, acting for its own province's hospitals."""
    if not area or not area.isdigit() or len(area) != 6:
        raise ValidationFailed("province clients need --area, the province's 6-digit issuing area")
    if not public_key_pem:
        raise ValidationFailed("province clients use private_key_jwt: give --public-key-file")
    return f"{scopes or DEFAULT_SCOPES['province']} {province_scope(area)}"


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed HTTP Basic credentials") from exc
    client_id, sep, secret = raw.partition(":")
    if not sep:
        raise InvalidClient("malformed HTTP Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id), unquote(secret)


def _expiry(claims: dict[str, Any]) -> dt.datetime:
    """A used ``jti`` is kept until its assertion's ``exp`` (purged only after it)."""
    return dt.datetime.fromtimestamp(claims["exp"], dt.UTC)


def _replayed() -> AssertionRefused:
    return AssertionRefused("replayed_jti", "this jti was already used")


async def _consume_jti(session: AsyncSession, issuer: str, claims: dict[str, Any]) -> None:
    """Record a single-use assertion id (PostgreSQL's unique key is the authority)."""
    if not await repositories.spend_jti(session, issuer, claims["jti"], _expiry(claims)):
        raise _replayed()


async def authenticate_client(
    session: AsyncSession, runtime: Runtime, form: TokenRequest, authorization: str | None
) -> tuple[AuthClient, str | None]:
    """Exactly one of: HTTP Basic, client_secret in the form, or private_key_jwt."""
    basic = _basic_credentials(authorization)
    methods = sum(
        (basic is not None, form.client_secret is not None, form.client_assertion is not None)
    )
    if methods != 1:
        raise InvalidClient("authenticate with exactly one method")
    if form.client_assertion is not None:
        if form.client_assertion_type != ASSERTION_TYPE_JWT:
            raise InvalidClient("unsupported client_assertion_type")
        try:
            unverified = jwt.decode(form.client_assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidClient(
                "client assertion refused (malformed): not a well-formed JWT", rule="malformed"
            ) from exc
        client = await _active_client(session, str(unverified.get("iss", "")))
        if client is None or not client.public_key_pem:
            # One answer for unknown and secret clients: no probing which ids exist.
            raise InvalidClient(
                "client assertion refused (issuer): iss names no client registered with a "
                "public key",
                rule="issuer",
            )
        try:
            claims = assertions.decode(
                runtime,
                client,
                form.client_assertion,
                secret=None,
                subject=client.client_id,
                max_ttl_s=runtime.settings.max_client_assertion_ttl_s,
            )
            await _consume_jti(session, client.client_id, claims)
        except AssertionRefused as exc:
            raise InvalidClient(f"client {exc}", rule=exc.rule) from exc
        return client, None
    client_id, secret = basic if basic is not None else (form.client_id or "", form.client_secret)
    assert secret is not None
    client = await _active_client(session, client_id)
    stored = client.secret_hash if client is not None else None
    key = secret_key(runtime.cipher)
    upgraded: str | None = None  # the secret's hash under the active key, to store now
    if client is not None and stored is not None and client_secrets.is_legacy(stored):
        # Registered before keyed hashes: Argon2, off the loop; upgraded on first success.
        if not await client_secrets.legacy_match(stored, secret):
            raise InvalidClient()
        upgraded = client_secrets.hash_secret(key, secret)
    # Unknown clients are checked against a dummy hash too: the same (tiny) cost either way.
    elif not client_secrets.keyed_match(key, stored, secret):
        matched, upgraded = (
            _other_secret_matches(runtime, client, secret) if client else (False, None)
        )
        if not matched:
            raise InvalidClient()
    if client is None:
        raise InvalidClient()
    if upgraded is not None:
        await repositories.set_secret_hash(session, client.client_id, upgraded)
    return client, secret


def _other_secret_matches(
    runtime: Runtime, client: AuthClient, secret: str
) -> tuple[bool, str | None]:
    """Whether it is the secret replaced by ``rotate-secret --grace`` while its grace lasts, or a
    secret hashed under a hash key being rotated out; for the latter also its hash under the
    active key, stored on this first use."""
    key = secret_key(runtime.cipher)
    until = client.previous_secret_until
    in_grace = until is not None and utcnow() < until
    if in_grace and client_secrets.keyed_match(key, client.previous_secret_hash, secret):
        return True, None
    for old in runtime.cipher.other_hash_keys:
        if client_secrets.keyed_match(client_secrets.derive_key(old), client.secret_hash, secret):
            return True, client_secrets.hash_secret(key, secret)
    return False, None


async def rotate_secret(
    session: AsyncSession, cipher: PiiCipher, client_id: str, grace_s: int
) -> str | None:
    """Give a secret client a new secret; the old one stops at once, or after ``grace_s``.

    None when there is no such client; :class:`ValidationFailed` for a private_key_jwt client.
    """
    client = await repositories.client_by_id(session, client_id, for_update=True)
    if client is None:
        return None
    if client.secret_hash is None:
        raise ValidationFailed("this client authenticates with a public key: it has no secret")
    secret = secrets.token_urlsafe(32)
    keep = grace_s > 0 and not client_secrets.is_legacy(client.secret_hash)
    client.previous_secret_hash = client.secret_hash if keep else None
    client.previous_secret_until = utcnow() + dt.timedelta(seconds=grace_s) if keep else None
    client.secret_hash = client_secrets.hash_secret(secret_key(cipher), secret)
    return secret


def secret_key(cipher: PiiCipher) -> bytes:
    """The client-secret HMAC key, derived from the hash key (see ecert/security/client_secrets)."""
    return client_secrets.derive_key(cipher.hash_key)


async def _active_client(session: AsyncSession, client_id: str) -> AuthClient | None:
    if not client_id or len(client_id) > 64:
        return None
    return await repositories.active_client(session, client_id)


async def issue_token(
    session: AsyncSession,
    runtime: Runtime,
    form: TokenRequest,
    authorization: str | None,
    limiter: RateLimiter,
) -> TokenResponse:
    if form.grant_type not in (GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER):
        raise UnsupportedGrant()
    # Every statement here commits on its own (no BEGIN and COMMIT): each is a lone read or a
    # lone single-use mark, and the audit row is group-committed (ecert.security.auditbatch).
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    client, secret = await authenticate_client(session, runtime, form, authorization)
    acting(client.client_id, client.kind)  # a refusal from here on is audited against the client
    # Counted once authenticated: a count by the claimed client_id would let anyone who knows
    # an id spend that client's budget with wrong secrets (the address bucket bounds those).
    await limiter.count_client(client.client_id, client.rate_limit)
    scopes = frozenset(client.scopes.split())
    if form.scope:
        requested = frozenset(form.scope.split())
        if not requested <= scopes:
            raise InvalidGrant(
                "a requested scope is not granted to this client", error="invalid_scope"
            )
        scopes = requested
    institution_code = client.institution_code
    if form.grant_type == GRANT_CLIENT_CREDENTIALS:
        principal = Principal(
            client.client_id, client.kind, scopes, None, institution_code, client.rate_limit
        )
        ttl = runtime.settings.access_token_ttl_s
    else:
        if client.kind != "channel":
            raise InvalidGrant("only channel clients act for a person")
        person = await _asserted_person(session, runtime, client, form.assertion, secret)
        principal = Principal(client.client_id, "channel", scopes, person.id, None)
        ttl = runtime.settings.person_token_ttl_s
        # Committed before the answer, together with the other requests' rows of the moment.
        row = audit_values(principal, person.id, "person_token.issue", "ok")
        await runtime.audit_batches.append(row, session)
    token = mint_access_token(runtime.keys, runtime.settings, principal, ttl_s=ttl)
    return TokenResponse(
        access_token=token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a password
        expires_in=ttl,
        scope=" ".join(sorted(scopes)),
    )


async def _asserted_person(
    session: AsyncSession,
    runtime: Runtime,
    client: AuthClient,
    token: str | None,
    secret: str | None,
) -> AssertedPerson:
    if not token:
        raise InvalidGrant("the jwt-bearer grant needs an 'assertion'")
    try:
        claims = assertions.decode(
            runtime,
            client,
            token,
            secret=secret,
            subject=None,
            max_ttl_s=runtime.settings.max_assertion_ttl_s,
        )
    except AssertionRefused as exc:
        raise InvalidGrant(f"person {exc}", rule=exc.rule) from exc
    amr = claims.get("amr")
    if not isinstance(amr, list) or not amr or not all(isinstance(m, str) for m in amr):
        raise InvalidGrant("the person assertion must say how the person was verified (amr)")
    if not isinstance(claims.get("name"), str):
        raise InvalidGrant("the person assertion must carry the person's name")
    number = parse_id_number(str(claims["sub"]))
    cipher = runtime.cipher
    # One statement: the jti spent (the authority for single use) and the person found. The jti
    # stays spent when the identity is then refused: an assertion is used once, either way.
    hashes = cipher.lookup_hashes(number.value)
    first, person = await repositories.spend_jti_find_person(
        session, client.client_id, claims["jti"], _expiry(claims), hashes
    )
    if not first:
        raise InvalidGrant(f"person {_replayed()}", rule="replayed_jti")
    if person is not None:
        concerning(person.id)
    registered = open_name(cipher, person.name_cipher) if person else None
    if person is None or registered is None or not names_match(registered, claims["name"]):
        # The refusal's audit row says which it was (ecert.security.audit); the caller is not told.
        refusal_reason("unknown_person" if person is None else "name_mismatch")
        raise IdentityMismatch()
    return person


async def list_clients(session: AsyncSession) -> list[Client]:
    """Every registered client, oldest first (for ``ecert clients list``)."""
    return list(await repositories.all_clients(session))


async def set_client_active(session: AsyncSession, client_id: str, active: bool) -> Client | None:
    """Enable or disable a client; None when there is no such client. Its new tokens are refused
    at once (``_active_client``), its current ones within ``ECERT_CLIENT_STATUS_REFRESH_S``."""
    client = await repositories.client_by_id(session, client_id)
    if client is not None:
        client.active = active
    return client


def server_metadata(runtime: Runtime) -> ServerMetadata:
    """RFC 8414 metadata. No ``jwks_uri``: access tokens are checked by ecert itself, and the
    published JWKS holds QR keys, which must not be mistaken for token keys."""
    issuer = runtime.settings.issuer_url
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=assertions.token_endpoint(issuer),
        grant_types_supported=[GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER],
        token_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        token_endpoint_auth_signing_alg_values_supported=list(assertions.PUBLIC_KEY_ALGORITHMS),
        scopes_supported=sorted({s for v in DEFAULT_SCOPES.values() for s in v.split()}),
        response_types_supported=[],
    )
