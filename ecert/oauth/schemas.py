"""Token endpoint request and response shapes."""

from __future__ import annotations

import msgspec

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenRequest(msgspec.Struct, kw_only=True):
    """Form fields of ``POST /oauth/token`` (``application/x-www-form-urlencoded``)."""

    grant_type: str
    client_id: str | None = None
    client_secret: str | None = None
    client_assertion_type: str | None = None
    client_assertion: str | None = None
    #: The person assertion of the JWT-bearer grant (RFC 7523 §2.1).
    assertion: str | None = None
    scope: str | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    """RFC 6749 §5.1 access token response."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str


class ClientCreated(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What ``ecert clients add`` prints: the secret appears once and is never stored in clear."""

    client_id: str
    client_secret: str | None = None
    #: Institutions: the key that signs the national gateway's ``_api_*`` headers (shown once).
    gateway_key: str | None = None


class ServerMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 8414 authorization server metadata (only what this token endpoint offers)."""

    issuer: str
    token_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    #: No authorization endpoint: no response type (RFC 8414 lists the field as required).
    response_types_supported: list[str]
    service_documentation: str | None = None
