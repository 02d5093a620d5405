"""Reference endpoints for the load benchmark: only sign or only verify an ES256 JWT.

Served by uvicorn with the same worker count as ecert, they are the ceiling the real endpoints
are compared with in the same run (``python -m bench``).
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar, get, post

_KEY = ec.generate_private_key(ec.SECP256R1())
_CLAIMS = {"iss": "370102", "sub": "AbCdEfGhIjKl", "ver": 1, "jti": "abcdefgh"}


def _token() -> str:
    now = int(time.time())
    return jwt.encode({**_CLAIMS, "iat": now, "exp": now + 3600}, _KEY, algorithm="ES256")


_TOKEN = _token()


@post("/sign", status_code=200)
async def sign() -> dict[str, str]:
    return {"token": _token()}


@post("/verify", status_code=200)
async def verify() -> dict[str, str]:
    claims = jwt.decode(_TOKEN, _KEY.public_key(), algorithms=["ES256"])
    return {"sub": claims["sub"]}


@get("/json")
async def plain() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[sign, verify, plain])
