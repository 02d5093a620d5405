"""Fast QR images of a QR token: PNG and SVG.

``qrcode`` with its defaults tries all eight mask patterns and draws through PIL (~20 ms an
image here). A token is random-looking data, so one fixed mask is as scannable as the "best";
the PNG is written directly as a 1-bit greyscale image, which no library does from a boolean
matrix this cheaply. The version for a segment shape is computed once (``_version``): with
``fit=True`` qrcode encodes the data twice. About 3 ms an image here (docs/performance.md).
"""

from __future__ import annotations

import functools
import struct
import zlib

import qrcode
from qrcode.util import MODE_ALPHA_NUM, MODE_NUMBER, QRData

from ecert.qr.codec import SCHEME_PREFIX

#: Fixed mask pattern (see module docstring).
MASK_PATTERN = 2


def segments(text: str) -> list[QRData]:
    """The token as two QR segments (alphanumeric prefix, numeric digits); other text as bytes."""
    if text.startswith(SCHEME_PREFIX) and text[len(SCHEME_PREFIX) :].isdigit():
        return [
            QRData(SCHEME_PREFIX, mode=MODE_ALPHA_NUM),
            QRData(text[len(SCHEME_PREFIX) :], mode=MODE_NUMBER),
        ]
    return [QRData(text.encode())]


def _code(version: int | None) -> qrcode.QRCode:
    return qrcode.QRCode(
        version=version,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=0,
        mask_pattern=MASK_PATTERN,
    )


@functools.lru_cache(maxsize=64)
def _version(shape: tuple[tuple[int, int], ...]) -> int:
    """The smallest version for segments of these (mode, length): it depends on nothing else,
    so ``qrcode``'s best-fit pass (a full extra encoding of the data) runs once a shape."""
    code = _code(None)
    for mode, length in shape:
        code.add_data(QRData(("0" if mode == MODE_NUMBER else "A") * length, mode=mode))
    return int(code.best_fit())


def matrix(text: str) -> list[list[bool]]:
    """The QR module matrix (True = dark), error correction M, without a quiet zone."""
    parts = segments(text)
    code = _code(_version(tuple((s.mode, len(s)) for s in parts)))
    for segment in parts:
        code.add_data(segment)
    code.make(fit=False)
    return code.get_matrix()  # type: ignore[no-any-return]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def render_png(text: str, *, scale: int = 4, border: int = 4) -> bytes:
    """A 1-bit greyscale PNG (black on white), ``scale`` pixels a module, ``border`` modules."""
    cells = matrix(text)
    size = (len(cells) + 2 * border) * scale
    blank = bytes([0xFF]) * ((size + 7) // 8)
    rows: list[bytes] = []
    quiet = b"\x00" + blank
    rows.extend([quiet] * (border * scale))
    white, dark = "1" * scale, "0" * scale
    edge = white * border
    pad = (-size) % 8
    for row in cells:
        # One string of pixel bits a row, turned into bytes by int(): no per-pixel Python loop.
        bits = edge + "".join([dark if cell else white for cell in row]) + edge
        line = b"\x00" + (int(bits, 2) << pad).to_bytes((size + 7) // 8, "big")
        rows.extend([line] * scale)
    rows.extend([quiet] * (border * scale))
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + _chunk(b"IEND", b"")
    )


def render_svg(text: str, *, border: int = 4) -> str:
    """An SVG with one path of horizontal runs; scales to any size without blur."""
    cells = matrix(text)
    size = len(cells) + 2 * border
    parts: list[str] = []
    for y, row in enumerate(cells):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                parts.append(f"M{start + border} {y + border}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )
