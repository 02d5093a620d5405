"""Mutual aid routes (家庭共济): the account holder authorises, lists and revokes."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from ecert.db.models import MutualAidAuthorisation, Person
from ecert.identity import mask_id_number, mask_name
from ecert.persons import get_person, person_id_number, person_name
from ecert.server.auth import admits, person_guard, principal_of
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.server.runtime import Runtime
from ecert.settlement import mutual_aid, schemas


def masked(runtime: Runtime, person: Person) -> schemas.MaskedPerson:
    return schemas.MaskedPerson(
        name=mask_name(person_name(runtime.cipher, person)),
        id_number=mask_id_number(person_id_number(runtime.cipher, person)),
    )


def _view(
    runtime: Runtime, row: MutualAidAuthorisation, me: uuid.UUID | None, other: Person
) -> schemas.MutualAidView:
    return schemas.MutualAidView(
        authorisation_id=row.id,
        role="holder" if row.holder_id == me else "relative",
        relation=row.relation,
        person=masked(runtime, other),
        authorised_at=row.created_at,
    )


class MutualAidController(Controller):
    path = "/v1/me/mutual-aid"
    tags = ["Self-service"]
    opt = admits(person_guard)

    @post("/", status_code=201, summary="Let my personal account pay for a relative (家庭共济)")
    async def authorise(
        self,
        request: AnyRequest,
        data: JSONBody[schemas.MutualAidCreate],
        db_session: DbSession,
        runtime: RuntimeDep,
    ) -> schemas.MutualAidView:
        principal = principal_of(request)
        row = await mutual_aid.authorise(
            db_session,
            runtime,
            principal,
            id_number=data.relative_id_number,
            name=data.relative_name,
            relation=data.relation,
        )
        relative = await get_person(db_session, row.relative_id)
        assert relative is not None  # the foreign key
        return _view(runtime, row, principal.person_id, relative)

    @get("/", summary="Whom I authorised, and who authorised me (masked)")
    async def list_authorisations(
        self, request: AnyRequest, db_session: DbSession, runtime: RuntimeDep
    ) -> list[schemas.MutualAidView]:
        principal = principal_of(request)
        return [
            _view(runtime, item.authorisation, principal.person_id, item.other)
            for item in await mutual_aid.listing(db_session, principal)
        ]

    @delete(
        "/{authorisation_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="End an authorisation"
    )
    async def revoke(
        self, request: AnyRequest, authorisation_id: FromPath[uuid.UUID], db_session: DbSession
    ) -> None:
        await mutual_aid.revoke(db_session, principal_of(request), authorisation_id)
