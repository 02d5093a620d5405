"""Issuance routes: the person's e-cert and codes, agency suspension, JWKS, revocation feed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, post
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from ecert.db.models import ECert as ECertRow
from ecert.db.models import ECertStatus
from ecert.errors import InvalidIdNumber
from ecert.issuance import feed, schemas, services, suspensions
from ecert.issuance.mintcache import MintCache
from ecert.persons import find_by_ref
from ecert.qr.image import render_png, render_svg
from ecert.server.auth import admits, agency_guard, person_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.server.ratelimit import RateLimiter

NO_STORE = {"Cache-Control": "no-store"}


def _mint_cache(request: AnyRequest) -> MintCache:
    cache: MintCache = request.app.state.mint_cache
    return cache


def _view(ecert: ECertRow) -> schemas.ECert:
    return schemas.ECert(
        number=ecert.number,
        status=ecert.status,
        version=ecert.version,
        device_id=ecert.device_id,
        device_name=ecert.device_name,
        bound_at=ecert.bound_at,
    )


class MyECertController(Controller):
    """The person's e-cert on the calling channel (person-scoped token)."""

    path = "/v1/me/ecert"
    tags = ["E-cert"]
    opt = admits(person_guard)

    @post("/", summary="Activate the e-cert on a device", status_code=200)
    async def activate(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.ECertActivate],
        db_session: DbSession,
    ) -> schemas.ECert:
        ecert = await services.activate(
            db_session, principal_of(request), data.device_id, data.device_name
        )
        return _view(ecert)

    @get("/", summary="The e-cert's status")
    async def show(self, request: AnyRequest, db_session: DbSession) -> schemas.ECert:
        return _view(await services.current(db_session, principal_of(request)))

    @delete("/", summary="Unbind the e-cert from its device", status_code=HTTP_204_NO_CONTENT)
    async def unbind(self, request: AnyRequest, db_session: DbSession) -> None:
        await services.unbind(db_session, principal_of(request))

    @post("/qr", summary="A fresh rotating QR token", status_code=200, response_headers=NO_STORE)
    async def qr(
        self,
        request: AnyRequest,
        runtime: RuntimeDep,
        image: Annotated[
            Literal["svg"] | None,
            QueryParameter(description="Also return the code as an SVG image (`svg`)"),
        ] = None,
    ) -> schemas.Qr:
        # No database session here: a remembered e-cert needs none (services.mint_qr).
        text, expires, refresh = await services.mint_qr(
            runtime, principal_of(request), _mint_cache(request)
        )
        svg = render_svg(text) if image == "svg" else None
        return schemas.Qr(qr=text, expires_at=expires, refresh_after=refresh, svg=svg)

    @get("/qr.png", summary="The current QR token as a PNG image", media_type="image/png")
    async def qr_png(
        self,
        request: AnyRequest,
        runtime: RuntimeDep,
    ) -> Response[bytes]:
        text, _, _ = await services.mint_qr(runtime, principal_of(request), _mint_cache(request))
        return Response(render_png(text), media_type="image/png", headers=NO_STORE)

    @get("/qr.svg", summary="The current QR token as an SVG image", media_type="image/svg+xml")
    async def qr_svg(
        self,
        request: AnyRequest,
        runtime: RuntimeDep,
    ) -> Response[str]:
        text, _, _ = await services.mint_qr(runtime, principal_of(request), _mint_cache(request))
        return Response(render_svg(text), media_type="image/svg+xml", headers=NO_STORE)

    @post(
        "/code",
        summary="A 28-digit numeric code (online only)",
        status_code=200,
        response_headers=NO_STORE,
    )
    async def numeric(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.NumericCode:
        code, expires, refresh = await services.mint_numeric(
            db_session, runtime, principal_of(request)
        )
        return schemas.NumericCode(code=code, expires_at=expires, refresh_after=refresh)

    @post("/suspend", summary="Suspend all of the person's e-certs (lost phone)", status_code=200)
    async def suspend(
        self,
        request: AnyRequest,
        db_session: DbSession,
        data: JSONBody[schemas.SuspendRequest],
    ) -> schemas.SuspendResult:
        principal = principal_of(request)
        assert principal.person_id is not None
        count = await suspensions.suspend(db_session, principal, principal.person_id, data.reason)
        return schemas.SuspendResult(affected=count, status=ECertStatus.SUSPENDED)

    @post("/resume", summary="Resume the person's suspended e-certs", status_code=200)
    async def resume(self, request: AnyRequest, db_session: DbSession) -> schemas.SuspendResult:
        principal = principal_of(request)
        assert principal.person_id is not None
        count = await suspensions.resume(db_session, principal, principal.person_id)
        return schemas.SuspendResult(affected=count, status=ECertStatus.ACTIVE)


class AgencyECertController(Controller):
    """Hotline actions on a person's e-certs; the person is named in the body."""

    path = "/v1/agency/ecerts"
    tags = ["Agency"]
    opt = admits(agency_guard)

    async def _act(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        data: JSONBody[schemas.AgencyPersonAction],
        *,
        lift: bool,
    ) -> schemas.SuspendResult:
        person = await find_by_ref(db_session, runtime.cipher, data.id_number, data.person_no)
        if person is None:
            raise InvalidIdNumber("no insured person has this ID number or person number")
        principal = principal_of(request)
        if lift:
            count = await suspensions.resume(db_session, principal, person.id)
        else:
            count = await suspensions.suspend(db_session, principal, person.id, data.reason)
        return schemas.SuspendResult(
            affected=count, status=ECertStatus.ACTIVE if lift else ECertStatus.SUSPENDED
        )

    @post("/suspend", summary="Suspend all e-certs of a person", status_code=200)
    async def suspend(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        data: JSONBody[schemas.AgencyPersonAction],
    ) -> schemas.SuspendResult:
        return await self._act(request, db_session, runtime, data, lift=False)

    @post("/resume", summary="Resume all e-certs of a person", status_code=200)
    async def resume(
        self,
        request: AnyRequest,
        db_session: DbSession,
        runtime: RuntimeDep,
        data: JSONBody[schemas.AgencyPersonAction],
    ) -> schemas.SuspendResult:
        return await self._act(request, db_session, runtime, data, lift=True)


class PublicKeysController(Controller):
    """What offline scanners fetch over plain HTTPS."""

    tags = ["Offline verification"]

    @get("/.well-known/jwks.json", exclude_from_auth=True, summary="QR verification keys")
    async def jwks(self, request: AnyRequest, runtime: RuntimeDep) -> Response[Any]:
        body, etag = feed.jwks(runtime)  # the request gate made the ring current
        headers = {
            # Short: a revoked key leaves scanners' caches within seconds (the ETag keeps it cheap).
            "Cache-Control": "public, max-age=10",
            "Access-Control-Allow-Origin": "*",
            "ETag": etag,
        }
        if request.headers.get("if-none-match") == etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(body, headers=headers)

    @get("/v1/revocations", exclude_from_auth=True, summary="Signed revocation feed")
    async def revocations(
        self,
        db_session: DbSession,
        runtime: RuntimeDep,
        request: AnyRequest,
        since: Annotated[
            int, Parameter(ge=0, le=2**62, description="Last sequence number already held")
        ] = 0,
    ) -> Response[schemas.RevocationFeed]:
        cache: feed.FeedCache = request.app.state.feed_cache
        state = await feed.feed_state(db_session)
        body = cache.get(since, state)
        if body is None:
            # Only a page built afresh is counted (per address): a fleet's repeated asks for the
            # newest page are served from memory and exhaust nothing.
            limiter: RateLimiter = request.app.state.rate_limiter
            await limiter.hit(*limiter.feed_bucket(request.scope))
            body = await feed.revocations(db_session, runtime, since)
            cache.put(since, state, body)
        headers = {"Cache-Control": "public, max-age=10", "Access-Control-Allow-Origin": "*"}
        return Response(body, headers=headers)
