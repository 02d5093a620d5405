"""Reading a QR code from an uploaded photo without letting the photo stall or crash a worker.

A PNG or JPEG header claims its size before any pixel is decoded, and a few kilobytes can claim
hundreds of megapixels. The size is checked from the header first (Pillow opens lazily); only
then are the pixels decoded and searched, in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import io

import anyio
import anyio.to_thread
import zxingcpp
from PIL import Image, UnidentifiedImageError

from ecert.errors import EcertError, ValidationFailed

#: 4096² ≈ 16.8 Mpx: a 12 Mpx phone photo (4032×3024) passes; decoding it costs ~64 MB and a few
#: hundred ms. Anything larger is refused from its header, before a pixel is decoded.
MAX_PIXELS = 4096 * 4096
#: A 12 Mpx JPEG is 2–6 MB; the route's body limit (above the app's 1 MiB) is this.
MAX_IMAGE_BYTES = 8 * 1024 * 1024
#: Decodes at once, per process: each holds up to ~64 MB and a core.
_decoders = anyio.CapacityLimiter(2)
_QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


class ImageTooLarge(EcertError):
    """Raised when an image claims more pixels than the decoder accepts."""

    status = 413
    code = "image_too_large"
    title = "The image has too many pixels"


def read_code(data: bytes) -> str:
    """The text of the first QR code in a PNG or JPEG; blocking (see :func:`read_code_off_loop`)."""
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageTooLarge(f"at most {MAX_PIXELS} pixels (4096×4096); send a smaller photo")
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires from the header above ~89 Mpx (a warning, or an error twice
        # that): the same refusal as ours.
        raise ImageTooLarge(f"at most {MAX_PIXELS} pixels (4096×4096)") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationFailed("the body is not a PNG or JPEG image") from exc
    # QR codes only: with every format on, a noisy photo's grain was once read as a 1D barcode
    # (a DataBar/EAN text) ahead of the QR code beside it (tests/web/test_scanner_decode.py).
    found = zxingcpp.read_barcodes(image, formats=_QR_ONLY)
    if not found:
        raise ValidationFailed("no code found in the image")
    return str(found[0].text)


async def read_code_off_loop(data: bytes) -> str:
    """:func:`read_code` in a bounded pool of worker threads."""
    return await anyio.to_thread.run_sync(read_code, data, limiter=_decoders)
