"""``ecert verify``: check a QR code offline and print the verdict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("verify")
@click.argument("text", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Decode the code from a photo or screenshot (zxing-cpp).",
)
@click.option("--server", help="ecert base URL to fetch the key set and revocation feed from.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A saved key set (fully offline).",
)
@click.option(
    "--feed",
    "feed_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A saved revocation feed page (with --jwks).",
)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A trust list of issuing areas and their key sources (codes of several provinces).",
)
@click.option(
    "--skew", default=5, show_default=True, type=int, help="Clock difference to accept, in seconds."
)
@click.option(
    "--feed-stale-after",
    "feed_stale_s",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Refuse (feed_stale) when the newest revocation feed held was signed longer ago.",
)
def verify_command(
    text: str | None,
    image: Path | None,
    server: str | None,
    jwks_file: Path | None,
    feed_file: Path | None,
    trust_file: Path | None,
    skew: int,
    feed_stale_s: float,
) -> None:
    """Check a QR code offline and print the verdict (exit status 1 when refused).

    Keys come from one ecert (--server, or saved --jwks/--feed files) or, for codes of several
    provinces, from a trust list (--trust; format in ecert/verify/trust.py and docs/scaling.md).
    """
    from ecert.verify.offline import OfflineVerifier
    from ecert.verify.trust import TrustList, TrustListInvalid

    if image is not None:
        from ecert.errors import EcertError
        from ecert.web.images import read_code

        # The server's decoder and its size caps: a hostile image file cannot exhaust the scanner.
        try:
            text = read_code(image.read_bytes())
        except EcertError as exc:
            raise click.ClickException(exc.detail) from exc
    if not text:
        raise click.UsageError("give the scanned TEXT or --image FILE")
    verifier: OfflineVerifier | TrustList
    if trust_file is not None:
        try:
            verifier = TrustList.from_file(trust_file, skew_s=skew, feed_stale_s=feed_stale_s)
        except TrustListInvalid as exc:
            raise click.BadParameter(str(exc), param_hint="--trust") from exc
    elif jwks_file is not None:
        verifier = OfflineVerifier.from_files(
            jwks_file, feed_file, skew_s=skew, feed_stale_s=feed_stale_s
        )
    elif server:
        verifier = OfflineVerifier.from_server(server, skew_s=skew, feed_stale_s=feed_stale_s)
    else:
        raise click.UsageError(
            "give --server URL, --jwks FILE for a fully offline check, or --trust FILE"
        )
    verdict = verifier.check(text)
    claims = verdict.claims
    click.echo(
        json.dumps(
            {
                "ok": verdict.ok,
                "code": verdict.code,
                "pseudonym": claims.sub if claims else None,
                "version": claims.ver if claims else None,
                "expires": claims.exp if claims else None,
            }
        )
    )
    if not verdict.ok:
        sys.exit(1)
