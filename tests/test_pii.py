"""PII at rest: AES-GCM round trip, key rotation, and no plaintext in the database."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text

from ecert.runtime import Runtime
from ecert.security.pii import PiiCipher
from tests.helpers import add_person


def _cipher(*kids: str) -> PiiCipher:
    keys = {kid: secrets.token_bytes(32) for kid in kids}
    return PiiCipher(keys, kids[0], secrets.token_bytes(32))


def test_round_trip_and_context_binding() -> None:
    cipher = _cipher("a")
    blob = cipher.encrypt("11010519491231002X", context="person.id")
    assert b"11010519491231002X" not in blob
    assert cipher.decrypt(blob, context="person.id") == "11010519491231002X"
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, context="person.name")


def test_old_key_still_decrypts_after_rotation() -> None:
    old = _cipher("k1")
    blob = old.encrypt("张三", context="person.name")
    rotated = PiiCipher({"k2": secrets.token_bytes(32), **old.keys}, "k2", old.hash_key)
    assert rotated.decrypt(blob, context="person.name") == "张三"
    assert rotated.encrypt("张三", context="person.name")[2:4] == b"k2"


def test_lookup_hash_is_keyed() -> None:
    a, b = _cipher("a"), _cipher("a")
    assert a.lookup_hash("x") == a.lookup_hash("x")
    assert a.lookup_hash("x") != b.lookup_hash("x")


async def test_database_holds_no_plaintext_id_or_name(runtime: Runtime) -> None:
    _, id_number = await add_person(runtime, name="欧阳娜娜")
    async with runtime.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM persons"))).all()
        audit = (await connection.execute(text("SELECT * FROM audit_events"))).all()
    dump = repr([*rows, *audit]).encode()
    for secret in (id_number, "欧阳娜娜"):
        assert secret.encode() not in dump
        assert secret.encode("utf-8").hex().encode() not in dump
        assert base64.b64encode(secret.encode()) not in dump
    for row in rows:
        for value in row:
            if isinstance(value, bytes | memoryview):
                assert id_number.encode() not in bytes(value)
                assert "欧阳娜娜".encode() not in bytes(value)
