"""RFC 8414 metadata, and a stock OAuth client (authlib, default settings) using it."""

from __future__ import annotations

from typing import Any, cast

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar

from ecert.server.runtime import Runtime
from tests.factories import add_client
from tests.fixtures.auth import bearer
from tests.helpers import Client

METADATA = "/.well-known/oauth-authorization-server"


async def test_metadata_names_the_token_endpoint_and_methods(
    client: Client, runtime: Runtime
) -> None:
    response = await client.get(METADATA)
    assert response.status_code == 200
    body = response.json()
    issuer = runtime.settings.issuer_url
    assert body["issuer"] == issuer
    assert body["token_endpoint"] == issuer.rstrip("/") + "/oauth/token"
    assert set(body["grant_types_supported"]) == {
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    }
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert "client_secret_basic" in body["token_endpoint_auth_methods_supported"]
    assert {"ES256", "RS256"} <= set(body["token_endpoint_auth_signing_alg_values_supported"])
    assert "none" not in body["token_endpoint_auth_signing_alg_values_supported"]
    # The published JWKS holds QR keys, not token keys: no jwks_uri to mislead a client.
    assert "jwks_uri" not in body


async def test_authlib_private_key_jwt_with_its_defaults_gets_a_token(
    app: Litestar, client: Client, runtime: Runtime
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    client_id, _ = await add_client(runtime, "institution", public_key_pem=public.decode())
    endpoint = (await client.get(METADATA)).json()["token_endpoint"]
    transport = httpx.ASGITransport(app=cast("Any", app))
    async with AsyncOAuth2Client(
        client_id,
        private.decode(),
        token_endpoint_auth_method=PrivateKeyJWT(endpoint),  # defaults: RS256, one hour
        transport=transport,
    ) as oauth:
        token = await oauth.fetch_token(endpoint, grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert set(token["scope"].split()) == {"verify", "settle"}
        # A second token with a fresh assertion (new jti) works too.
        again = await oauth.fetch_token(endpoint, grant_type="client_credentials")
    assert again["access_token"] != token["access_token"]
    me = await client.get(
        "/v1/visits/00000000-0000-0000-0000-000000000000", headers=bearer(token["access_token"])
    )
    assert me.status_code == 404  # authenticated as the institution; no such visit
