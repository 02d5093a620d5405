"""Family routes: request, consent, list, end, and show a relative's code."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from ecert.db.models import FamilyLink as FamilyLinkRow
from ecert.issuance import schemas
from ecert.issuance.family import services as family
from ecert.server.auth import admits, agency_guard, person_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep


def _view(link: FamilyLinkRow, me: uuid.UUID | None) -> schemas.FamilyLink:
    return schemas.FamilyLink(
        link_id=link.id,
        relation=link.relation,
        status=link.status,
        role="holder" if link.holder_id == me else "relative",
        consent_source=link.consent_source,
    )


class FamilyController(Controller):
    path = "/v1/me/family"
    tags = ["Family"]
    opt = admits(person_guard)

    @post("/", status_code=201, summary="Ask to show codes for a relative (needs consent)")
    async def request_link(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.FamilyLinkCreate],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.FamilyLink:
        principal = principal_of(request)
        link = await family.request_link(
            db_session,
            runtime,
            principal,
            relation=data.relation,
            id_number=data.id_number,
            name=data.name,
        )
        return _view(link, principal.person_id)

    @post("/consents", status_code=200, summary="The relative consents (their own token)")
    async def consent(
        self, request: AnyRequest, data: JSONBody[schemas.FamilyConsent], db_session: DbSession
    ) -> schemas.FamilyLink:
        principal = principal_of(request)
        return _view(await family.consent(db_session, principal, data.link_id), principal.person_id)

    @get("/", summary="Family links where the person is holder or relative")
    async def list_links(
        self, request: AnyRequest, db_session: DbSession
    ) -> list[schemas.FamilyLink]:
        principal = principal_of(request)
        return [
            _view(link, principal.person_id) for link in await family.links(db_session, principal)
        ]

    @delete("/{link_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="End a family link")
    async def end(
        self, request: AnyRequest, link_id: FromPath[uuid.UUID], db_session: DbSession
    ) -> None:
        await family.revoke(db_session, principal_of(request), link_id)

    @post(
        "/{link_id:uuid}/qr",
        status_code=200,
        summary="A QR code for the relative",
        response_headers={"Cache-Control": "no-store"},
    )
    async def qr(
        self,
        request: AnyRequest,
        link_id: FromPath[uuid.UUID],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.Qr:
        text, expires, refresh = await family.mint_for_relative(
            db_session, runtime, principal_of(request), link_id
        )
        return schemas.Qr(qr=text, expires_at=expires, refresh_after=refresh)


class AgencyFamilyController(Controller):
    path = "/v1/agency/family/consents"
    tags = ["Agency"]
    opt = admits(agency_guard)

    @post("/", status_code=200, summary="Record a consent given at the counter")
    async def record(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.AgencyFamilyConsent],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.FamilyLink:
        link = await family.agency_consent(
            db_session,
            runtime,
            principal_of(request),
            holder_id_number=data.holder_id_number,
            relative_id_number=data.relative_id_number,
            relation=data.relation,
        )
        return _view(link, link.holder_id)
