"""A trust list of provinces: each code is verified by the keys of the area it claims, and only
that area's keys; areas off the list are refused; the CLI takes the list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.cli.main import main
from ecert.qr import codec
from ecert.security.keys import public_jwk
from ecert.server.runtime import Runtime
from ecert.verify.trust import TrustList, TrustListInvalid
from tests.factories import holder, now
from tests.helpers import Client

# Another province's ecert, seen from here: its own area and its own signing key.
BEIJING = "110105"
BEIJING_KEY = ec.generate_private_key(ec.SECP256R1())


def _beijing_code(iss: str = BEIJING, key: ec.EllipticCurvePrivateKey = BEIJING_KEY) -> str:
    return codec.encode(codec.new_claims(iss, "BjPseudonym1", 1, now(), 60), key, "bj1")


async def _trust_file(client: Client, folder: Path) -> Path:
    (folder / "home-jwks.json").write_bytes((await client.get("/.well-known/jwks.json")).content)
    (folder / "home-feed.json").write_bytes((await client.get("/v1/revocations?since=0")).content)
    beijing = {"keys": [{**public_jwk("bj1", BEIJING_KEY.public_key()), "ecert_use": "qr"}]}
    (folder / "bj-jwks.json").write_text(json.dumps(beijing))
    trust = {
        "issuers": {
            "370102": {"jwks": "home-jwks.json", "feed": "home-feed.json"},
            BEIJING: {"jwks": "bj-jwks.json"},
        }
    }
    path = folder / "trust.json"
    path.write_text(json.dumps(trust))
    return path


async def test_codes_of_each_listed_province_verify(
    client: Client, runtime: Runtime, tmp_path: Path
) -> None:
    trust = TrustList.from_file(await _trust_file(client, tmp_path))
    home = await (await holder(client, runtime)).qr(client)
    assert trust.check(home).ok
    verdict = trust.check(_beijing_code())
    assert verdict.ok
    assert verdict.claims is not None
    assert verdict.claims.iss == BEIJING


async def test_claiming_another_area_or_an_unlisted_one_is_refused(
    client: Client, runtime: Runtime, tmp_path: Path
) -> None:
    trust = TrustList.from_file(await _trust_file(client, tmp_path))
    # Signed by Beijing's key but claiming Shandong's area: Shandong's keys do not know it.
    assert trust.check(_beijing_code(iss="370102")).code == "qr_unknown_key"
    # Beijing's key id with another key: the signature does not verify.
    forged = _beijing_code(key=ec.generate_private_key(ec.SECP256R1()))
    assert trust.check(forged).code == "qr_signature_invalid"
    assert trust.check(_beijing_code(iss="440305")).code == "qr_wrong_issuer"
    assert trust.check("EC1:/12345").code == "qr_malformed"


async def test_cli_takes_a_trust_list(client: Client, runtime: Runtime, tmp_path: Path) -> None:
    path = await _trust_file(client, tmp_path)
    result = CliRunner().invoke(main, ["verify", "--trust", str(path), _beijing_code()])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    refused = CliRunner().invoke(main, ["verify", "--trust", str(path), _beijing_code("440305")])
    assert refused.exit_code == 1
    assert json.loads(refused.output)["code"] == "qr_wrong_issuer"


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        {"issuers": {}},
        {"issuers": {"37010": {"jwks": "x.json"}}},
        {"issuers": {"370102": {"url": "https://x"}}},
        {"issuers": {"370102": {"jwks": "missing.json"}}},
    ],
)
def test_a_bad_trust_list_is_refused_with_a_reason(tmp_path: Path, document: object) -> None:
    path = tmp_path / "trust.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(TrustListInvalid):
        TrustList.from_file(path)
    result = CliRunner().invoke(main, ["verify", "--trust", str(path), "EC1:/1"])
    assert result.exit_code == 2
    assert "--trust" in result.output
