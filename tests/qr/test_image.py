"""QR images decode back to the exact token with an independent decoder (zxing-cpp)."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import qrcode
import zxingcpp
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from ecert.qr import codec, image

KEY = ec.generate_private_key(ec.SECP256R1())


def _token() -> str:
    claims = codec.new_claims("370102", "AbCdEfGhIjKl", 999, 4_102_444_800, 120)
    return codec.encode(claims, KEY, "k1Ab")


def test_png_decodes_to_the_token() -> None:
    text = _token()
    picture = Image.open(io.BytesIO(image.render_png(text)))
    results = zxingcpp.read_barcodes(picture)
    assert [r.text for r in results] == [text]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode


def test_png_scale_and_border() -> None:
    text = _token()
    modules = len(image.matrix(text))
    assert modules == 57  # version 10
    picture = Image.open(io.BytesIO(image.render_png(text, scale=3, border=2)))
    assert picture.size == ((modules + 4) * 3, (modules + 4) * 3)


def test_svg_paths_are_the_matrix_and_scan() -> None:
    text = _token()
    svg = image.render_svg(text, border=4)
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    size = len(image.matrix(text)) + 8
    assert root.attrib["viewBox"] == f"0 0 {size} {size}"
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    dark: set[tuple[int, int]] = set()
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)", path.attrib["d"]):
        dark.update((int(x) + i - 4, int(y) - 4) for i in range(int(width)))
    matrix = image.matrix(text)
    assert dark == {(x, y) for y, row in enumerate(matrix) for x, cell in enumerate(row) if cell}
    # Rasterise the path ourselves and scan it, so the SVG is proven scannable too.
    picture = Image.new("L", (size * 4, size * 4), 255)
    for x, y in dark:
        for dx in range(4):
            for dy in range(4):
                picture.putpixel(((x + 4) * 4 + dx, (y + 4) * 4 + dy), 0)
    assert [r.text for r in zxingcpp.read_barcodes(picture)] == [text]


def test_each_length_gets_its_own_version_and_still_scans() -> None:
    # The version is cached by segment shape; texts of other lengths and modes must not reuse
    # a version too small (or needlessly large) for them.
    numeric = codec.SCHEME_PREFIX + "1" + "7" * 40
    for text in (numeric, "424" + "1" * 25, "hello", _token()):
        cells = image.matrix(text)
        picture = Image.open(io.BytesIO(image.render_png(text)))
        assert [r.text for r in zxingcpp.read_barcodes(picture)] == [text]
        fitted = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
        for segment in image.segments(text):
            fitted.add_data(segment)
        fitted.make(fit=True)
        assert len(cells) == len(fitted.get_matrix())  # the version qrcode itself would pick
