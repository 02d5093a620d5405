"""The clinic page's server help: image decoding for institutions; demo sign-in only in the demo."""

from __future__ import annotations

from ecert import qrimage
from ecert.runtime import Runtime
from tests.factories import holder, institution
from tests.helpers import Client


async def test_decode_reads_the_code_from_an_image(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    png = qrimage.render_png(text)
    decoded = await client.post(
        "/v1/scanner/decode", content=png, headers={**hospital, "Content-Type": "image/png"}
    )
    assert decoded.json() == {"text": text}
    junk = await client.post(
        "/v1/scanner/decode",
        content=b"not an image",
        headers={**hospital, "Content-Type": "image/png"},
    )
    assert (junk.status_code, junk.json()["code"]) == (400, "validation_failed")
    refused = await client.post("/v1/scanner/decode", content=png, headers=person.headers)
    assert refused.status_code == 403


async def test_demo_sign_in_is_absent_outside_the_demo(client: Client) -> None:
    response = await client.post("/v1/demo/person-token", json={"person": 0})
    assert response.status_code in (401, 404)
    page = await client.get("/app/")
    assert page.status_code == 200
    assert "医保电子凭证" in page.text
