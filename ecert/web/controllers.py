"""Server help for the pages: the clinic's image decoder, and the demo's sign-in."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody

from ecert.oauth.schemas import TokenResponse
from ecert.server.auth import admits, institution_guard
from ecert.server.deps import AnyRequest, DbSession, RuntimeDep
from ecert.web import services
from ecert.web.images import MAX_IMAGE_BYTES, MAX_PIXELS, read_code_off_loop


class Decoded(msgspec.Struct):
    text: str


class DemoSignIn(msgspec.Struct, forbid_unknown_fields=True):
    person: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0


class ScannerController(Controller):
    path = "/v1/scanner"
    tags = ["Verify and settle"]
    opt = admits(institution_guard)

    @post(
        "/decode",
        status_code=200,
        summary="Read a QR code from a camera frame or photo (for scanners without a decoder)",
        description="Send the image as the body (PNG or JPEG, at most "
        f"{MAX_IMAGE_BYTES // 1048576} MiB and {MAX_PIXELS} pixels: a 12 Mpx phone photo passes; "
        "larger ones get 413 `image_too_large`). The same decoder as `ecert verify --image` "
        "(zxing-cpp).",
        request_max_body_size=MAX_IMAGE_BYTES,
    )
    async def decode(self, request: AnyRequest) -> Decoded:
        return Decoded(text=await read_code_off_loop(await request.body()))


class DemoController(Controller):
    """Only mounted by ``ecert demo`` (``ECERT_DEMO_SIGNIN``): never in production."""

    path = "/v1/demo"
    tags = ["Demo"]

    @post(
        "/person-token",
        status_code=200,
        exclude_from_auth=True,
        summary="Demo only: a person-scoped token for a demo person",
    )
    async def person_token(
        self, data: JSONBody[DemoSignIn], db_session: DbSession, runtime: RuntimeDep
    ) -> TokenResponse:
        return await services.demo_sign_in(db_session, runtime, data.person)
