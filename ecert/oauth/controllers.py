"""``POST /oauth/token`` and its RFC 8414 metadata."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, HeaderParameter

from ecert.oauth.schemas import ServerMetadata, TokenRequest, TokenResponse
from ecert.oauth.services import issue_token, server_metadata
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep


class TokenController(Controller):
    path = "/oauth"
    tags = ["OAuth2"]

    @post(
        "/token",
        status_code=200,
        exclude_from_auth=True,
        response_headers={"Cache-Control": "no-store"},
        summary="Get an access token",
        description=(
            "client_credentials with client_secret (form or HTTP Basic) or private_key_jwt "
            "(RFC 7523 §2.2); and the JWT-bearer grant (RFC 7523 §2.1) with which a channel "
            "gets a person-scoped token."
        ),
    )
    async def token(
        self,
        request: AnyRequest,
        data: Annotated[TokenRequest, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: DbSession,
        runtime: RuntimeDep,
        authorization: Annotated[str | None, HeaderParameter(name="Authorization")] = None,
    ) -> TokenResponse:
        limiter = request.app.state.rate_limiter
        return await issue_token(db_session, runtime, data, authorization, limiter)


class ServerMetadataController(Controller):
    path = "/.well-known/oauth-authorization-server"
    tags = ["OAuth2"]

    @get(
        "/",
        exclude_from_auth=True,
        summary="OAuth authorization server metadata (RFC 8414)",
    )
    async def metadata(self, runtime: RuntimeDep) -> ServerMetadata:
        return server_metadata(runtime)
