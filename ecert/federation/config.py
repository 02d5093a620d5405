"""The federation file: which provinces we settle with, and how we authenticate at each.

::

    {"key_file": "province-key.pem",
     "timeout_s": 10,
     "provinces": {"440106": {"url": "https://ecert.gd.example", "client_id": "pro_…"}}}

Keys of ``provinces`` are the peers' issuing areas (``iss`` of their codes): this is the trust
list of §6 for online verification. ``key_file`` (relative to the file's folder) is our P-256
private key; each peer registered its public half as our ``province`` client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ecert.federation.exceptions import FederationFileInvalid

Area = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]


class Peer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Another province's ecert."""

    url: str
    #: Our client id at that ecert (registered there with ``--kind province``).
    client_id: str
    #: That ecert's ECERT_ISSUER_URL when it differs from ``url`` (the assertions' audience).
    issuer: str = ""


class FederationFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key_file: str
    provinces: dict[Area, Peer]
    #: Seconds a routed call may take before the hospital gets ``province_unavailable``.
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0


def load(path: Path) -> tuple[FederationFile, ec.EllipticCurvePrivateKey]:
    """Read and check the file and its key; FederationFileInvalid names what is wrong."""
    try:
        document = msgspec.json.decode(path.read_bytes(), type=FederationFile)
        key = load_pem_private_key((path.parent / document.key_file).read_bytes(), None)
    except (OSError, ValueError, TypeError, msgspec.DecodeError) as exc:
        raise FederationFileInvalid(f"{path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise FederationFileInvalid(f"{path}: key_file must hold a P-256 private key")
    prefixes = [area[:2] for area in document.provinces]
    if len(set(prefixes)) != len(prefixes):
        raise FederationFileInvalid(f"{path}: one entry a province")
    return document, key
