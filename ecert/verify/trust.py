"""A trust list: one offline verifier per issuing area, so a scanner accepts other provinces' codes.

Each province runs its own ecert with its own issuing area (``iss``) and key set. A scanner
serving out-of-province patients loads a trust list file::

    {"issuers": {
        "370102": {"server": "https://ecert.sd.example"},
        "110105": {"jwks": "beijing-jwks.json", "feed": "beijing-feed.json"}
    }}

(saved files are relative to the trust list's folder), then::

    trust = TrustList.from_file(Path("trust.json"))
    verdict = trust.check(scanned_text)

The area a code claims only chooses whose keys verify it; that verifier accepts that area alone,
so a code signed by one province's key but claiming another's area is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecert.errors import EcertError
from ecert.qr import codec
from ecert.verify.offline import OfflineVerifier, Verdict


class TrustListInvalid(ValueError):
    """The trust list file is not what the module docstring describes."""


@dataclass(frozen=True)
class TrustList:
    verifiers: dict[str, OfflineVerifier]

    def check(self, text: str) -> Verdict:
        try:
            jws, _ = codec.open_code(text)
            area = codec.unverified_issuer(jws)
        except EcertError as exc:
            return Verdict(False, exc.code, None, exc.detail)
        verifier = self.verifiers.get(area)
        if verifier is None:
            refusal = codec.QrWrongIssuer("the issuing area is not on the trust list")
            return Verdict(False, refusal.code, None, refusal.detail)
        return verifier.check(text)

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> TrustList:
        """Load a trust list file; ``options`` go to every verifier (``skew_s``, the max ages of
        keys and feed, ``feed_stale_s``, …): each province's verifier refreshes on its own."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            issuers = document["issuers"]
            if not isinstance(issuers, dict) or not issuers:
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrustListInvalid(f'{path}: expected {{"issuers": {{area: source}}}}') from exc
        verifiers = {}
        for area, source in issuers.items():
            if not isinstance(area, str) or not codec.ISS_PATTERN.match(area):
                raise TrustListInvalid(f"{path}: an issuing area is six digits, not {area!r}")
            verifiers[area] = _verifier(path.parent, area, source, options)
        return cls(verifiers)


def _verifier(folder: Path, area: str, source: Any, options: dict[str, Any]) -> OfflineVerifier:
    pinned = {**options, "issuers": {area}}
    if isinstance(source, dict) and isinstance(source.get("server"), str):
        return OfflineVerifier.from_server(source["server"], **pinned)
    if isinstance(source, dict) and isinstance(source.get("jwks"), str):
        feed = source.get("feed")
        try:
            return OfflineVerifier.from_files(
                folder / source["jwks"], folder / feed if isinstance(feed, str) else None, **pinned
            )
        except (OSError, ValueError, KeyError) as exc:
            raise TrustListInvalid(f"issuer {area}: cannot load its saved files ({exc})") from exc
    raise TrustListInvalid(f'issuer {area}: give {{"server": URL}} or {{"jwks": FILE}}')
