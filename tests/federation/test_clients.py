"""Registering another province's ecert: kind ``province``, private_key_jwt, its own area only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecert.config import Settings
from ecert.errors import ValidationFailed
from ecert.server.runtime import Runtime
from tests.factories import add_client
from tests.helpers import run_cli


def _public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


async def test_a_province_client_needs_its_area_and_a_public_key(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="--area"):
        await add_client(runtime, "province", public_key_pem=_public_pem())
    with pytest.raises(ValidationFailed, match="private_key_jwt"):
        await add_client(runtime, "province", area="440106")


async def test_ecert_clients_add_registers_a_province(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "gd.pub.pem").write_text(_public_pem())
    out = await run_cli(
        settings,
        "clients",
        "add",
        "--kind",
        "province",
        "--name",
        "广东省",
        "--area",
        "440106",
        "--public-key-file",
        str(tmp_path / "gd.pub.pem"),
    )
    client_id = json.loads(out)["client_id"]
    assert "client_secret" not in json.loads(out)
    listed = await run_cli(settings, "clients", "list")
    assert client_id in listed
    assert "province:44" in listed
