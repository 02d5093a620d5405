"""The offline verifier: good codes pass; expired, revoked, tampered, unknown-key codes fail;
no network once warm; an unknown kid refetches at a bounded rate; the CLI prints the verdict."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.cli.main import main
from ecert.config import Settings
from ecert.qr import codec
from ecert.server.runtime import Runtime
from ecert.verify.offline import OfflineVerifier
from tests.factories import holder, mint_at, now
from tests.helpers import Client, run_cli


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
    jws = codec.to_compact_jws(current)
    tampered = codec.SCHEME_PREFIX + codec.pack(
        jws[:-3] + ("A" if jws[-3] != "A" else "B") + jws[-2:]
    )
    stranger = codec.encode(
        codec.new_claims("370102", "AbCdEfGhIjKl", 1, now(), 60),
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


async def test_finding_05_offline_refuses_a_revoked_key_after_the_feed_refresh(
    client: Client, runtime: Runtime, settings: Settings
) -> None:
    person = await holder(client, runtime)
    text = await person.qr(client)
    kid = codec.read_header(text).kid
    fetch = Recorder(await _documents(client))
    verifier = OfflineVerifier(fetch=fetch)
    verifier.refresh()
    assert verifier.check(text).ok
    await run_cli(settings, "keys", "revoke", "--", kid)
    # A cache in front of the server may still hand out the old key set; the signed feed wins.
    stale_jwks = fetch.documents["/.well-known/jwks.json"]
    fetch.documents = {**await _documents(client), "/.well-known/jwks.json": stale_jwks}
    verifier.refresh()
    assert verifier.check(text).code == "qr_unknown_key"


class Clocks:
    """The device's wall clock and its monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.wall = float(now())
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def test_finding_06_scanner_refreshes_feed_and_keys_on_schedule(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    clocks = Clocks()
    fetch = Recorder(await _documents(client))
    verifier = OfflineVerifier(
        fetch=fetch,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
        feed_max_age_s=60,
        keys_max_age_s=300,
    )
    verifier.refresh()
    text = await person.qr(client)
    assert verifier.check(text).ok
    await client.post("/v1/me/ecert/suspend", json={}, headers=person.headers)
    fetch.documents = await _documents(client)
    assert verifier.check(text).ok  # within the feed's max age: no fetch
    clocks.advance(30)
    calls = len(fetch.calls)
    clocks.advance(31)  # past the feed's max age: new pages are fetched, the key set is not
    assert verifier.check(text).code == "ecert_suspended"
    assert fetch.calls[calls:] == [f"/v1/revocations?since={verifier._seq - 1}"]
    clocks.advance(300)
    verifier.check(text)
    assert "/.well-known/jwks.json" in fetch.calls[calls + 1 :]


async def test_finding_06_stale_feed_is_refused_with_feed_stale(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    clocks = Clocks()
    start = clocks.wall
    fetch = Recorder(await _documents(client))
    verifier = OfflineVerifier(
        fetch=fetch, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono, feed_stale_s=600
    )
    verifier.refresh()
    fetch.documents = {}  # the network is gone: every fetch fails
    clocks.advance(550)
    text = await mint_at(runtime, person, iat=int(clocks.wall))
    assert verifier.check(text).ok  # the feed held is 550 s old: still within the bound
    clocks.advance(100)
    text = await mint_at(runtime, person, iat=int(clocks.wall))
    verdict = verifier.check(text)
    assert (verdict.ok, verdict.code) == (False, "feed_stale")
    assert "old" in verdict.detail
    # Setting the device clock back to just after the feed's iat does not make the feed young
    # again: the monotonic clock still counts the 650 s that passed.
    clocks.wall = start + 10
    text = await mint_at(runtime, person, iat=int(clocks.wall))
    assert verifier.check(text).code == "feed_stale"


async def test_finding_06_device_clock_set_back_cannot_revive_an_expired_code(
    client: Client, runtime: Runtime
) -> None:
    person = await holder(client, runtime)
    expired = await mint_at(runtime, person, iat=now() - 600)  # valid from -600 to -540 s
    wall = [float(now() - 570)]  # a device clock ten minutes behind, inside that window
    verifier = OfflineVerifier(fetch=Recorder(await _documents(client)), clock=lambda: wall[0])
    verifier.refresh()
    # The signed feed was issued now: "now" is at least its iat, so the code has expired.
    assert verifier.check(expired).code == "qr_expired"


async def test_finding_06_saved_feed_too_old_is_stale_and_the_cli_says_so(
    client: Client, runtime: Runtime, tmp_path: Path
) -> None:
    person = await holder(client, runtime)
    text = await person.qr(client)
    documents = await _documents(client)
    (tmp_path / "jwks.json").write_bytes(documents["/.well-known/jwks.json"])
    (tmp_path / "feed.json").write_bytes(documents["/v1/revocations"])
    later = [float(now() + 1000)]
    files = OfflineVerifier.from_files(
        tmp_path / "jwks.json", tmp_path / "feed.json", clock=lambda: later[0], skew_s=2000
    )
    assert files.check(text).code == "feed_stale"
    args = ["verify", "--jwks", str(tmp_path / "jwks.json"), "--feed", str(tmp_path / "feed.json")]
    fresh = CliRunner().invoke(main, [*args, text])
    assert json.loads(fresh.output)["code"] == "ok", fresh.output
    strict = CliRunner().invoke(main, [*args, "--feed-stale-after", "0", text])
    assert strict.exit_code == 1
    assert json.loads(strict.output)["code"] == "feed_stale"
