"""PII at rest: AES-GCM round trip, key rotation, and no plaintext in the database."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.exceptions import InvalidTag
from litestar import Litestar
from sqlalchemy import text

from ecert.config import Settings, settings_from_env
from ecert.security import gateway_keys
from ecert.security.auditchain import derive_key
from ecert.security.pii import KeyMaterialError, PiiCipher, PiiKeyMissing, load_cipher, sealed_kid
from ecert.server.runtime import Runtime
from tests.factories import add_client, add_person
from tests.fixtures.app import AppFactory, open_client
from tests.fixtures.auth import JWT_BEARER, person_assertion
from tests.helpers import run_cli, settings_env


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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_ops_several_pii_keys_need_an_explicit_active_key(tmp_path: Path) -> None:
    keys = f"k2:{_b64(secrets.token_bytes(32))},k1:{_b64(secrets.token_bytes(32))}"
    base = {"data_dir": str(tmp_path), "pii_keys": keys, "hash_key": _b64(secrets.token_bytes(32))}
    with pytest.raises(KeyMaterialError, match="ECERT_PII_ACTIVE_KEY"):
        load_cipher(settings_from_env({}, **base))
    with pytest.raises(KeyMaterialError, match="'k3' names no key"):
        load_cipher(settings_from_env({}, pii_active_key="k3", **base))
    cipher = load_cipher(settings_from_env({}, pii_active_key="k1", **base))
    assert cipher.active_kid == "k1"
    assert cipher.encrypt("x", context="c")[2:4] == b"k1"  # not the first listed
    # A hash key rotation without a pinned audit key would change the audit key with it.
    hashes = f"h0:{_b64(secrets.token_bytes(32))},h1:{_b64(secrets.token_bytes(32))}"
    with pytest.raises(KeyMaterialError, match="ECERT_AUDIT_KEY"):
        load_cipher(
            settings_from_env(
                {}, **{**base, "hash_key": hashes}, pii_active_key="k1", hash_active_key="h1"
            )
        )


def test_ops_unknown_key_id_is_a_named_error_not_a_key_error() -> None:
    blob = _cipher("k2").encrypt("张三", context="person.name")
    with pytest.raises(PiiKeyMissing, match="'k2'") as caught:
        _cipher("k1").decrypt(blob, context="person.name")
    assert caught.value.status == 503
    assert caught.value.code == "pii_key_missing"


async def _person_token_status(app: Litestar, channel: tuple[str, str | None], number: str) -> Any:
    runtime = app.state.runtime
    channel_id, secret = channel
    assert secret is not None
    assertion = person_assertion(
        channel_id, secret, number, "张三", audience=runtime.settings.issuer_url
    )
    async with open_client(app) as http:
        response = await http.post(
            "/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": assertion},
            auth=(channel_id, secret),
        )
    return response


async def test_ops_two_phase_pii_rotation_across_old_and_new_runtimes(
    make_app: AppFactory, settings: Settings
) -> None:
    new_key = f"n2:{_b64(secrets.token_bytes(32))}"
    old = make_app()  # the running release: only t1
    runtime = old.state.runtime
    channel = await add_client(runtime, "channel")
    # One-phase rotation (the documented trap): a new pod seals with n2 while old pods run.
    one_phase = make_app(pii_keys=f"{settings.pii_keys},{new_key}", pii_active_key="n2")
    _, number = await add_person(one_phase.state.runtime)
    response = await _person_token_status(old, channel, number)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "pii_key_missing"
    assert "'n2'" in response.json()["detail"]
    assert response.headers["Retry-After"] == "1"
    # Two phases: n2 deployed decrypt-only everywhere first (t1 still seals), then promoted.
    phase1 = make_app(pii_keys=f"{settings.pii_keys},{new_key}", pii_active_key="t1")
    assert (await _person_token_status(phase1, channel, number)).status_code == 200
    _, written_in_phase1 = await add_person(phase1.state.runtime)
    assert (await _person_token_status(old, channel, written_in_phase1)).status_code == 200


async def test_ops_reencrypt_and_rehash_move_every_row_then_old_keys_go(
    make_app: AppFactory, settings: Settings
) -> None:
    old = make_app()
    runtime = old.state.runtime
    channel = await add_client(runtime, "channel")
    numbers = [(await add_person(runtime))[1] for _ in range(5)]
    # A national gateway key is sealed too (a second institution has none: NULL is skipped).
    hospital, _ = await add_client(runtime, "institution")
    await add_client(runtime, "institution")
    async with runtime.sessions.begin() as session:
        gateway_key = await gateway_keys.issue(session, runtime.cipher, hospital)
    await runtime.refresh_keys()  # signing keys exist, sealed with t1
    async with open_client(old):
        pass
    new_pii, new_hash = _b64(secrets.token_bytes(32)), _b64(secrets.token_bytes(32))
    pinned = _b64(derive_key(settings, runtime.cipher))
    rotating = msgspec.structs.replace(
        settings,
        pii_keys=f"{settings.pii_keys},n2:{new_pii}",
        pii_active_key="n2",
        hash_key=f"h0:{settings.hash_key},h1:{new_hash}",
        hash_active_key="h1",
        audit_key=pinned,
    )
    # Mid-rotation the service finds people under either hash; the client's secret moves on use.
    mid = make_app(
        **{
            f: getattr(rotating, f)
            for f in ("pii_keys", "pii_active_key", "hash_key", "hash_active_key", "audit_key")
        }
    )
    assert (await _person_token_status(mid, channel, numbers[0])).status_code == 200
    out = await run_cli(rotating, "pii", "reencrypt", "--batch-size", "2")
    assert json.loads(out.splitlines()[-1])["changed"]["persons.id_cipher"] == 5
    assert json.loads(out.splitlines()[-1])["changed"]["clients.gateway_key_cipher"] == 1
    out = await run_cli(rotating, "pii", "rehash", "--batch-size", "2")
    assert json.loads(out.splitlines()[-1])["changed"]["persons.id_hash"] == 5
    again = await run_cli(rotating, "pii", "rehash")  # resumable: a second run has nothing to do
    assert json.loads(again.splitlines()[-1])["changed"]["persons.id_hash"] == 0
    async with runtime.engine.connect() as connection:
        blobs = (await connection.execute(text("SELECT id_cipher, name_cipher FROM persons"))).all()
        signing = (await connection.execute(text("SELECT private_cipher FROM signing_keys"))).all()
        gateway = (
            await connection.execute(
                text("SELECT gateway_key_cipher FROM clients WHERE gateway_key_cipher IS NOT NULL")
            )
        ).all()
    assert {sealed_kid(bytes(b)) for row in [*blobs, *signing, *gateway] for b in row} == {"n2"}
    # The old keys are dropped: only n2 and h1 remain, and everything still works.
    final = make_app(
        pii_keys=f"n2:{new_pii}", pii_active_key="", hash_key=new_hash, audit_key=pinned
    )
    for number in numbers:
        assert (await _person_token_status(final, channel, number)).status_code == 200
    assert gateway_keys.unseal(final.state.runtime.cipher, bytes(gateway[0][0])) == gateway_key
    assert "ok" in await run_cli(
        msgspec.structs.replace(
            rotating,
            pii_keys=f"n2:{new_pii}",
            pii_active_key="",
            hash_key=new_hash,
            hash_active_key="",
        ),
        "pii",
        "check",
    )


async def test_ops_pii_check_names_a_key_this_process_lacks(
    make_app: AppFactory, settings: Settings
) -> None:
    one_phase = make_app(
        pii_keys=f"{settings.pii_keys},n9:{_b64(secrets.token_bytes(32))}", pii_active_key="n9"
    )
    await add_person(one_phase.state.runtime)
    env = {**os.environ, **settings_env(settings)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecert.cli",
        "pii",
        "check",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert "n9" in err.decode()
    assert "Traceback" not in err.decode()


async def test_ops_rehash_names_two_rows_of_one_person_instead_of_failing(
    make_app: AppFactory, settings: Settings
) -> None:
    runtime = make_app().state.runtime
    person, number = await add_person(runtime)
    new_hash = _b64(secrets.token_bytes(32))
    # A one-phase hash key change: a pod with only the new key registered the person again.
    one_phase = make_app(hash_key=new_hash).state.runtime
    twin, _ = await add_person(one_phase, id_number=number)
    assert twin.id != person.id
    rotating = msgspec.structs.replace(
        settings,
        hash_key=f"h0:{settings.hash_key},h1:{new_hash}",
        hash_active_key="h1",
        audit_key=_b64(derive_key(settings, runtime.cipher)),
    )
    env = {**os.environ, **settings_env(rotating)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ecert.cli", "pii", "rehash", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 1
    assert str(person.id) in err.decode()
    assert "merge them" in err.decode()
    assert number not in err.decode()
    assert "Traceback" not in err.decode()


def test_ops_key_file_carries_a_hash_key_rotation(tmp_path: Path) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {
                "pii_keys": {"k1": _b64(secrets.token_bytes(32))},
                "active": "k1",
                "hash_keys": {"h0": _b64(old), "h1": _b64(new)},
                "hash_active": "h1",
            }
        )
    )
    settings = settings_from_env(
        {}, data_dir=str(tmp_path), key_file=str(path), audit_key=_b64(secrets.token_bytes(32))
    )
    cipher = load_cipher(settings)
    assert (cipher.hash_key, cipher.other_hash_keys) == (new, (old,))
    assert len(cipher.lookup_hashes("x")) == 2
