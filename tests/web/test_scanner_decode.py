"""The clinic page's server help: image decoding for institutions; demo sign-in only in the demo."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from ecert.qr import image
from ecert.server.runtime import Runtime
from ecert.web import images
from tests.factories import holder, institution
from tests.helpers import Client


async def test_decode_reads_the_code_from_an_image(client: Client, runtime: Runtime) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    png = image.render_png(text)
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


def _blank_png(width: int, height: int) -> bytes:
    # A 1-bit blank image compresses to almost nothing: a few kB claim millions of pixels.
    out = io.BytesIO()
    Image.new("1", (width, height), 1).save(out, format="PNG", optimize=True)
    return out.getvalue()


async def test_finding_10_oversized_images_are_refused_before_decoding(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    hospital = await institution(client, runtime)
    headers = {**hospital, "Content-Type": "image/png"}
    pngs = [_blank_png(width, height) for width, height in ((9000, 9000), (14000, 14000))]
    decoded: list[str] = []  # the header alone decides: no pixel is decoded, no code searched
    monkeypatch.setattr(Image.Image, "load", lambda *_: decoded.append("pixels"))
    monkeypatch.setattr(zxingcpp, "read_barcodes", lambda *_, **__: decoded.append("barcodes"))
    for png in pngs:
        assert len(png) < 200_000
        response = await client.post("/v1/scanner/decode", content=png, headers=headers)
        assert (response.status_code, response.json()["code"]) == (413, "image_too_large")
    assert decoded == []
    too_many_bytes = b"\x89PNG\r\n\x1a\n" + bytes(images.MAX_IMAGE_BYTES)
    response = await client.post("/v1/scanner/decode", content=too_many_bytes, headers=headers)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")


async def test_finding_10_a_phone_photo_still_decodes(client: Client, runtime: Runtime) -> None:
    """A 12 Mpx phone photo (4032×3024 JPEG, larger than the app's 1 MiB body limit) passes."""
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    photo = Image.new("L", (4032, 3024), 200)
    code = Image.open(io.BytesIO(image.render_png(text, scale=16)))
    photo.paste(code, (1500, 1000))
    noise = Image.effect_noise((4032, 3024), 60)  # camera noise: the JPEG stays photo-sized
    photo = Image.blend(photo, noise, 0.15)
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=92)
    assert len(out.getvalue()) > runtime.settings.max_body_bytes
    response = await client.post(
        "/v1/scanner/decode",
        content=out.getvalue(),
        headers={**hospital, "Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"text": text}


async def test_finding_10_decoding_runs_off_the_event_loop(
    client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = await holder(client, runtime)
    hospital = await institution(client, runtime)
    text = await person.qr(client)
    threads: list[threading.Thread] = []
    real = zxingcpp.read_barcodes

    def spy(image: Any, **options: Any) -> Any:
        threads.append(threading.current_thread())
        return real(image, **options)

    monkeypatch.setattr(zxingcpp, "read_barcodes", spy)
    response = await client.post(
        "/v1/scanner/decode",
        content=image.render_png(text),
        headers={**hospital, "Content-Type": "image/png"},
    )
    assert response.json() == {"text": text}
    assert threads
    assert threads[0] is not threading.main_thread()
