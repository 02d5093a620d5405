"""Server-to-server calls to another province's ecert (OAuth client credentials, private_key_jwt).

The access token is cached until shortly before it expires and fetched again once on a 401.
Whatever keeps the answer from arriving — refused connection, timeout, a 5xx — is
:class:`ProvinceUnavailable`: the caller records nothing and the hospital retries.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.federation.config import Peer
from ecert.federation.exceptions import ProvinceUnavailable
from ecert.security.province import ON_BEHALF_HEADER

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: A token is renewed this long before it expires, so none expires in flight.
_RENEW_S = 30
#: What we tell the hospital to wait before retrying.
RETRY_AFTER_S = 5
#: Reply headers carried back to the hospital.
PASSED_HEADERS = ("content-type", "idempotent-replayed", "retry-after", "location")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class ProvinceClient:
    """One peer province's ecert, as seen from ours."""

    area: str
    peer: Peer
    key: ec.EllipticCurvePrivateKey
    timeout_s: float
    #: Tests put an ASGI transport (or a faulty one) here before the first call.
    transport: httpx.AsyncBaseTransport | None = None
    _http: httpx.AsyncClient | None = None
    _token: tuple[str, float] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Institution codes already registered at the peer by this process.
    registered: set[str] = field(default_factory=set)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.peer.url, transport=self.transport, timeout=self.timeout_s
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _assertion(self) -> str:
        now = int(time.time())
        audience = (self.peer.issuer or self.peer.url).rstrip("/") + "/oauth/token"
        claims = {
            "iss": self.peer.client_id,
            "sub": self.peer.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self.key, algorithm="ES256")

    async def _access_token(self) -> str:
        async with self._lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
            }
            reply = await self._exchange("POST", "/oauth/token", data=form)
            if reply.status_code != 200:
                # Our registration there is wrong or disabled: an operator's problem, not the
                # hospital's, and not something a retry fixes soon.
                raise ProvinceUnavailable(
                    f"province {self.area} refused our client credentials", retry_after=60
                )
            body = reply.json()
            expires = time.monotonic() + max(int(body["expires_in"]) - _RENEW_S, 1)
            self._token = (str(body["access_token"]), expires)
            return self._token[0]

    async def _exchange(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._client().request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise ProvinceUnavailable(
                f"province {self.area} did not answer ({type(exc).__name__})",
                retry_after=RETRY_AFTER_S,
            ) from exc
        if response.status_code >= 500:
            raise ProvinceUnavailable(
                f"province {self.area} answered {response.status_code}",
                retry_after=response.headers.get("retry-after", RETRY_AFTER_S),
            )
        return response

    async def public_json(self, path: str) -> object:
        """A public document of the peer (its key set), without a token."""
        response = await self._exchange("GET", path)
        if response.status_code != 200:
            raise ProvinceUnavailable(
                f"province {self.area} did not publish {path}", retry_after=RETRY_AFTER_S
            )
        return response.json()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        on_behalf: str | None,
        idempotency_key: str | None = None,
    ) -> Reply:
        """Send one request as our province client (acting for ``on_behalf``, an institution)."""
        for attempt in (1, 2):
            headers = {"authorization": f"Bearer {await self._access_token()}"}
            if on_behalf is not None:
                headers[ON_BEHALF_HEADER] = on_behalf
            if idempotency_key is not None:
                headers["idempotency-key"] = idempotency_key
            if body is not None:
                headers["content-type"] = "application/json"
            response = await self._exchange(method, path, content=body, headers=headers)
            if response.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, then give up
                continue
            break
        kept = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
        return Reply(response.status_code, response.content, kept)
