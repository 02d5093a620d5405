"""Fast QR images of a QR token: PNG and SVG.

``qrcode`` with its defaults tries all eight mask patterns and draws through PIL (~20 ms an
image here). A token is random-looking data, so one fixed mask is as scannable as the "best";
the PNG is written directly as a 1-bit greyscale image, which no library does from a boolean
matrix this cheaply.
"""

from __future__ import annotations

import struct
import zlib

import qrcode
from qrcode.util import MODE_ALPHA_NUM, MODE_NUMBER, QRData

from ecert.qrtoken import SCHEME_PREFIX

#: Fixed mask pattern (see module docstring).
MASK_PATTERN = 2


def matrix(text: str) -> list[list[bool]]:
    """The QR module matrix (True = dark), error correction M, without a quiet zone."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, mask_pattern=MASK_PATTERN
    )
    if text.startswith(SCHEME_PREFIX) and text[len(SCHEME_PREFIX) :].isdigit():
        code.add_data(QRData(SCHEME_PREFIX, mode=MODE_ALPHA_NUM))
        code.add_data(QRData(text[len(SCHEME_PREFIX) :], mode=MODE_NUMBER))
    else:
        code.add_data(text)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()]


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
    for row in cells:
        bits = [True] * border + [not dark for dark in row] + [True] * border  # 1 = white
        value = 0
        for white in bits:
            for _ in range(scale):
                value = (value << 1) | white
        pad = (-size) % 8
        line = b"\x00" + (value << pad).to_bytes((size + 7) // 8, "big")
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
