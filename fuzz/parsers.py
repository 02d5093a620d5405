"""Fuzz the QR token parser and the ID number parser with atheris, for a bounded time.

    python -m fuzz.parsers -max_total_time=30

Both must refuse any input with their own error type; anything else (an uncaught exception, a
crash) is a finding and ends the run with a non-zero status.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from cryptography.hazmat.primitives.asymmetric import ec

    from ecert.errors import InvalidIdNumber
    from ecert.identity import parse_id_number
    from ecert.qr import codec

KEY = ec.generate_private_key(ec.SECP256R1()).public_key()


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    text = provider.ConsumeUnicodeNoSurrogates(700)
    with contextlib.suppress(codec.QrError):
        codec.decode(text, KEY, now=1_800_000_000, leeway_s=5)
    # Also as digits after the scheme tag, where the unpacking does its work.
    digits = "".join(c for c in text if c.isdigit())
    with contextlib.suppress(codec.QrError):
        codec.decode(codec.SCHEME_PREFIX + digits, KEY, now=1_800_000_000, leeway_s=5)
    with contextlib.suppress(InvalidIdNumber):
        parse_id_number(text[:40])


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
