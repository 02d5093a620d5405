"""The demo's sign-in: a person-scoped token for a seeded demo person, as the demo channel."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ecert.demo import DEMO_CHANNEL, demo_person
from ecert.errors import NotFound
from ecert.identity import parse_id_number
from ecert.oauth import repositories
from ecert.oauth.schemas import TokenResponse
from ecert.persons import find_person
from ecert.security.audit import record_audit
from ecert.security.tokens import Principal, mint_access_token
from ecert.server.runtime import Runtime


async def demo_sign_in(session: AsyncSession, runtime: Runtime, index: int) -> TokenResponse:
    channel = await repositories.client_by_name(session, DEMO_CHANNEL)
    person = await find_person(
        session, runtime.cipher, parse_id_number(demo_person(index)["id_number"])
    )
    if channel is None or person is None:
        raise NotFound("run `ecert demo` to seed the demo people first")
    principal = Principal(channel.client_id, "channel", frozenset({"person"}), person.id)
    ttl = runtime.settings.person_token_ttl_s
    await record_audit(session, principal, person.id, "demo.sign_in", "ok")
    return TokenResponse(
        access_token=mint_access_token(runtime.keys, runtime.settings, principal, ttl_s=ttl),
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a password
        expires_in=ttl,
        scope="person",
    )
