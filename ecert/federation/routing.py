"""Which requests of our hospitals go to another province, and taking them there.

A hospital always talks to its own province's ecert. A code, ec_token, visit or settlement of a
person insured in another province is that province's: the request goes there as it came (same
path, same body) through our ``province`` client, acting for the hospital, and the reply comes
back as it was. What we keep: the routed visit's address (to send its later calls there) and,
after the insured province replied with a settlement or reversal, a clearing record.

The Idempotency-Key sent on is derived from the hospital's own (and its institution code), so a
retry of a routed call after a lost reply reaches the same settlement, and two hospitals using
the same key never meet.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.config import Settings
from ecert.errors import EcertError, NotDesignated
from ecert.federation import clearing, config, repositories
from ecert.federation.client import ProvinceClient, Reply
from ecert.federation.exceptions import ProvinceNotTrusted
from ecert.federation.trust import PeerKeys, check_code
from ecert.qr import codec
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime

NUMERIC_CODE = re.compile(r"^424\d{25}$")
_UUID = r"[0-9a-fA-F-]{36}"
VISIT_PATH = re.compile(rf"^/v1/visits/(?P<id>{_UUID})(?P<rest>/.*)?$")
SETTLEMENT_PATH = re.compile(rf"^/v1/settlements/(?P<id>{_UUID})(?P<rest>/reversal)?$")
#: Paths whose body names the person (a code or an ec_token).
BY_BODY = {"/v1/verify": "qr", "/v1/visits": "ec_token", "/v1/settlements": "ec_token"}
BY_BODY["/v1/settlements/preview"] = "ec_token"


@dataclass
class Federation:
    """Our trust list of provinces and a client for each (``app.state.federation``)."""

    own_area: str
    peers: dict[str, ProvinceClient] = field(default_factory=dict)
    #: Each peer's published QR keys (the trust list's keys), by the peer's issuing area.
    keys: dict[str, PeerKeys] = field(default_factory=dict)

    def peer(self, area: str) -> ProvinceClient | None:
        """The province ``area`` belongs to; None when it is ours."""
        if area[:2] == self.own_area[:2]:
            return None
        for client in self.peers.values():
            if client.area[:2] == area[:2]:
                return client
        raise ProvinceNotTrusted(f"province {area[:2]} is not on the trust list")

    async def close(self) -> None:
        for client in self.peers.values():
            await client.close()


def load_federation(settings: Settings) -> Federation | None:
    if not settings.federation_file:
        return None
    document, key = config.load(Path(settings.federation_file))
    peers = {
        area: ProvinceClient(area, peer, key, document.timeout_s)
        for area, peer in document.provinces.items()
    }
    return Federation(settings.issuer_area, peers)


def routed_key(institution_code: str, key: str | None) -> str | None:
    """The Idempotency-Key sent on: the same for a retry, different for another hospital."""
    if key is None:
        return None
    return hashlib.sha256(f"{institution_code}\n{key}".encode()).hexdigest()


@dataclass(frozen=True)
class Named:
    """The insured area a request's body names; for a signed code, the code to check too."""

    area: str
    jws: str | None = None
    kid: str = ""


def _named(path: str, body: bytes) -> Named | None:
    """The insured area of a body (a code's issuer, an ec_token's area); None: none readable."""
    try:
        document = msgspec.json.decode(body)
        value = document.get(BY_BODY[path]) if isinstance(document, dict) else None
    except msgspec.DecodeError:
        return None  # the local handler refuses it properly
    if not isinstance(value, str):
        return None
    value = value.strip()
    if path != "/v1/verify":
        return Named(value[:6]) if value[:6].isdigit() else None
    if NUMERIC_CODE.match(value):
        return Named(value[22:24] + "0000")  # the national layout carries the province
    try:
        jws, header = codec.open_code(value)
        return Named(codec.unverified_issuer(jws), jws, header.kid)
    except EcertError:
        return None


async def destination(
    runtime: Runtime, federation: Federation, method: str, path: str, body: bytes
) -> ProvinceClient | None:
    """The province a hospital's request belongs to; None: ours. A signed code of another
    province must verify with that province's published keys before it goes there."""
    if method == "POST" and path in BY_BODY:
        named = _named(path, body)
        peer = federation.peer(named.area) if named else None
        if peer is not None and named is not None and named.jws is not None:
            keys = federation.keys.setdefault(peer.area, PeerKeys())
            await check_code(peer, keys, named.jws, named.kid, runtime.settings.leeway_s)
        return peer
    for pattern, lookup in (
        (VISIT_PATH, repositories.visit_province),
        (SETTLEMENT_PATH, repositories.settlement_province),
    ):
        found = pattern.match(path)
        if found:
            async with runtime.sessions() as session:
                province = await lookup(session, uuid.UUID(found["id"]))
            return federation.peers.get(province) if province else None
    return None


async def register_institution(runtime: Runtime, peer: ProvinceClient, code: str) -> None:
    """Our hospital, as the insured province must know it; refused here if not designated."""
    async with runtime.sessions() as session:  # closed before any call goes out
        institution = await repositories.institution(session, code)
    if institution is None or not institution.designated:
        raise NotDesignated()
    if code in peer.registered:
        return
    body = msgspec.json.encode(
        {
            "name": institution.name,
            "kind": institution.kind,
            "level": institution.level,
            "area": institution.area,
            "designated": institution.designated,
        }
    )
    reply = await peer.call("PUT", f"/v1/federation/institutions/{code}", body=body, on_behalf=None)
    if reply.status == 200:  # otherwise the routed call is refused there, with its reason
        peer.registered.add(code)


async def keep(
    session: AsyncSession, peer: ProvinceClient, code: str, method: str, path: str, reply: Reply
) -> None:
    """What we keep of a routed call's successful reply (nothing for reads and refusals)."""
    if method != "POST" or reply.status != 201:
        return
    body = msgspec.json.decode(reply.body)
    if path == "/v1/visits":
        await repositories.add_visit(session, uuid.UUID(body["visit_id"]), peer.area, code)
    elif path == "/v1/settlements" or path.endswith("/settlements"):
        await clearing.record(session, "settlement", peer.area, code, body)
    elif path.endswith("/reversal"):
        await clearing.record(session, "reversal", peer.area, code, body)


async def route(
    runtime: Runtime,
    federation: Federation,
    principal: Principal,
    method: str,
    path: str,
    query: str,
    body: bytes,
    key: str | None,
) -> Reply | None:
    """Send the request to the insured person's province; None when it is ours to answer."""
    peer = await destination(runtime, federation, method, path, body)
    if peer is None:
        return None
    code = principal.institution_code or ""
    await register_institution(runtime, peer, code)
    target = f"{path}?{query}" if query else path
    reply = await peer.call(
        method,
        target,
        body=body if method in ("POST", "PUT") else None,
        on_behalf=code,
        idempotency_key=routed_key(code, key),
    )
    async with runtime.sessions.begin() as session:
        await keep(session, peer, code, method, path, reply)
    return reply
