"""A worker remembers the access tokens it has checked (ecert.security.tokens.VerifiedTokens):
a remembered token must still die with its key and its expiry (its client's disablement:
tests/oauth/test_token.py, with a token used before)."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import jwt
import pytest

from ecert.errors import Unauthorized
from ecert.security import keys
from ecert.security.tokens import Principal, VerifiedTokens, mint_access_token
from ecert.server.runtime import Runtime
from tests.factories import add_client
from tests.fixtures.auth import bearer, client_token


async def _ok(client: httpx.AsyncClient, token: str) -> int:
    reply = await client.post("/v1/verify", json={"qr": "x"}, headers=bearer(token))
    return reply.status_code


async def test_a_remembered_token_dies_with_its_key(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    client_id, secret = await add_client(runtime, "institution")
    token = await client_token(client, client_id, secret)
    assert await _ok(client, token) != 401  # checked once, now remembered
    assert await _ok(client, token) != 401
    kid = jwt.get_unverified_header(token)["kid"]
    assert await keys.revoke_now(runtime.sessions, runtime.cipher, runtime.store, kid)
    assert await _ok(client, token) == 401


async def test_a_remembered_token_expires(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = await add_client(runtime, "institution")
    token = await client_token(client, client_id, secret)
    remembered = VerifiedTokens()
    principal = remembered.verify(runtime.keys, runtime.settings, token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    # Past expiry plus leeway for the memory (time.time) and for PyJWT's own check.
    later = exp + runtime.settings.leeway_s + 1
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _Frozen.at(later), raising=True)
    with pytest.raises(Unauthorized):
        remembered.verify(runtime.keys, runtime.settings, token)
    assert principal.client_id == client_id


class _Frozen(dt.datetime):
    _at = 0.0

    @classmethod
    def at(cls, when: float) -> type[_Frozen]:
        cls._at = when
        return cls

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _Frozen:
        return cls.fromtimestamp(cls._at, tz)


async def test_the_memory_is_bounded(client: httpx.AsyncClient, runtime: Runtime) -> None:
    remembered = VerifiedTokens(size=10)
    for n in range(25):
        principal = Principal(client_id=f"c{n}", kind="institution")
        remembered.verify(
            runtime.keys,
            runtime.settings,
            mint_access_token(runtime.keys, runtime.settings, principal, ttl_s=60),
        )
    assert len(remembered._entries) <= 10
