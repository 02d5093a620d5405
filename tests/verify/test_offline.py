"""The offline verifier: good codes pass; expired, revoked, tampered, unknown-key codes fail;
no network once warm; an unknown kid refetches at a bounded rate; the CLI prints the verdict."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from ecert import qrtoken
from ecert.cli import main
from ecert.runtime import Runtime
from ecert.verify.offline import OfflineVerifier
from tests.factories import holder, mint_at, now
from tests.helpers import Client


class Recorder:
    """Serves the app's documents captured through the test client; counts fetches."""

    def __init__(self, documents: dict[str, bytes]) -> None:
        self.documents = documents
        self.calls: list[str] = []

    def __call__(self, path: str) -> bytes:
        self.calls.append(path)
        return self.documents[path.split("?")[0]]


async def _documents(client: Client) -> dict[str, bytes]:
    return {
        "/.well-known/jwks.json": (await client.get("/.well-known/jwks.json")).content,
        "/v1/revocations": (await client.get("/v1/revocations?since=0")).content,
    }


async def test_accepts_good_and_refuses_bad_without_network(
    client: Client, runtime: Runtime, tmp_path: Path
) -> None:
    person = await holder(client, runtime)
    good = await person.qr(client)
    old = good
    await client.post(
        "/v1/me/ecert", json={"device_id": "p2", "device_name": "x"}, headers=person.headers
    )  # rebind: version 2, old codes revoked
    current = await person.qr(client)
    expired = await mint_at(runtime, person, iat=now() - 600)
    jws = qrtoken.to_compact_jws(current)
    tampered = qrtoken.SCHEME_PREFIX + qrtoken.pack(
        jws[:-3] + ("A" if jws[-3] != "A" else "B") + jws[-2:]
    )
    stranger = qrtoken.encode(
        qrtoken.new_claims("370102", "AbCdEfGhIjKl", 1, now(), 60),
        ec.generate_private_key(ec.SECP256R1()),
        "zzzz",
    )

    fetch = Recorder(await _documents(client))
    clock = [float(now())]
    verifier = OfflineVerifier(
        fetch=fetch, issuers={"370102"}, min_refetch_s=60, clock=lambda: clock[0]
    )
    verifier.refresh()
    warm = len(fetch.calls)
    assert verifier.check(current).ok
    assert verifier.check(old).code == "ecert_revoked"
    assert verifier.check(expired).code == "qr_expired"
    assert verifier.check(tampered).code == "qr_signature_invalid"
    assert verifier.check(stranger).code == "qr_unknown_key"
    assert verifier.check("hello").code == "qr_malformed"
    # Warm caches: nothing went to the network, not even for the unknown kid (too soon).
    assert len(fetch.calls) == warm
    clock[0] += 61  # past the refetch interval: one refetch (key set + one feed page), then none
    assert verifier.check(stranger).code == "qr_unknown_key"
    assert verifier.check(stranger).code == "qr_unknown_key"
    assert len(fetch.calls) == warm + 2


async def test_files_and_cli(client: Client, runtime: Runtime, tmp_path: Path) -> None:
    person = await holder(client, runtime)
    text = await person.qr(client)
    documents = await _documents(client)
    (tmp_path / "jwks.json").write_bytes(documents["/.well-known/jwks.json"])
    (tmp_path / "feed.json").write_bytes(documents["/v1/revocations"])
    verifier = OfflineVerifier.from_files(tmp_path / "jwks.json", tmp_path / "feed.json")
    assert verifier.check(text).ok

    args = ["verify", "--jwks", str(tmp_path / "jwks.json"), "--feed", str(tmp_path / "feed.json")]
    result = CliRunner().invoke(main, [*args, text])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    png = (await client.get("/v1/me/ecert/qr.png", headers=person.headers)).content
    (tmp_path / "code.png").write_bytes(png)
    from_image = CliRunner().invoke(main, [*args, "--image", str(tmp_path / "code.png")])
    assert json.loads(from_image.output)["ok"] is True
    refused = CliRunner().invoke(main, [*args, text[:-3] + "000"])
    assert refused.exit_code == 1
    assert json.loads(refused.output)["ok"] is False


async def test_suspension_reaches_the_scanner_through_the_feed(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    text = await person.qr(client)
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    verifier = OfflineVerifier(fetch=Recorder(await _documents(client)))
    verifier.refresh()
    assert verifier.check(text).code == "ecert_suspended"
