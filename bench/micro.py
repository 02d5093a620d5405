"""In-process benchmarks, each measured beside its reference in the same run.

    python -m bench.micro [--rounds 5] [--seconds 0.5]

- QR mint (claims → packed QR text) against a bare ES256 JWT sign of the same claims with PyJWT
  (and, for the record, against the raw ``cryptography`` P-256 sign underneath);
- QR PNG and SVG render time per image;
- offline verifier checks against raw ``cryptography`` P-256 verifies.
Rounds alternate between a figure and its reference, so machine noise hits both alike; the
median round is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.progress import track
from rich.table import Table

from ecert.qr import codec, image
from ecert.security.keys import public_jwk
from ecert.verify.offline import OfflineVerifier


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            work()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def median_ms(work: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(rounds: int, seconds: float) -> dict[str, float]:
    """Medians over alternating rounds: mint, sign, offline, p256 (per second); png, svg (ms)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = codec.new_claims("370102", "AbCdEfGhIjKl", 3, now, 60)
    payload = {
        "iss": claims.iss,
        "sub": claims.sub,
        "ver": claims.ver,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    }
    text = codec.encode(claims, key, "k1Ab")
    jws = codec.to_compact_jws(text)
    signing_input, signature = jws.rsplit(".", 1)
    der = jwt.utils.raw_to_der_signature(jwt.utils.base64url_decode(signature), ec.SECP256R1())
    public = key.public_key()
    verifier = OfflineVerifier(fetch=None, skew_s=5)
    verifier.load_jwks({"keys": [{**public_jwk("k1Ab", public), "ecert_use": "qr"}]})
    assert verifier.check(text).ok

    figures: dict[str, list[float]] = {
        k: [] for k in ("mint", "sign", "rawsign", "offline", "p256", "png", "svg")
    }
    for _ in track(range(rounds), description="Benchmarking", transient=True):
        figures["mint"].append(rate(lambda: codec.encode(claims, key, "k1Ab"), seconds))
        figures["sign"].append(
            rate(
                lambda: jwt.encode(payload, key, algorithm="ES256", headers={"kid": "k1Ab"}),
                seconds,
            )
        )
        figures["rawsign"].append(
            rate(lambda: key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())), seconds)
        )
        figures["offline"].append(rate(lambda: verifier.check(text), seconds))
        figures["p256"].append(
            rate(
                lambda: public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256())),
                seconds,
            )
        )
        figures["png"].append(median_ms(lambda: image.render_png(text), 50))
        figures["svg"].append(median_ms(lambda: image.render_svg(text), 50))
    return {k: statistics.median(v) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per figure per round")
    args = parser.parse_args()
    Console().print(table(measure(args.rounds, args.seconds)))


def table(med: dict[str, float]) -> Table:
    result = Table(title="ecert in-process benchmarks (median of rounds)")
    for column in ("figure", "value", "reference", "ratio", "target"):
        result.add_column(column)
    result.add_row(
        "QR mint /s",
        f"{med['mint']:,.0f}",
        f"bare ES256 sign {med['sign']:,.0f}/s",
        f"{med['mint'] / med['sign']:.2f}",
        "≥ 0.70",
    )
    result.add_row(
        "QR mint /s (vs raw P-256 sign)",
        f"{med['mint']:,.0f}",
        f"raw P-256 sign {med['rawsign']:,.0f}/s",
        f"{med['mint'] / med['rawsign']:.2f}",
        "",
    )
    result.add_row(
        "offline verify /s",
        f"{med['offline']:,.0f}",
        f"raw P-256 verify {med['p256']:,.0f}/s",
        f"{med['offline'] / med['p256']:.2f}",
        "≥ 0.60",
    )
    result.add_row("QR PNG ms/image", f"{med['png']:.2f}", "", "", "≤ 5")
    result.add_row("QR SVG ms/image", f"{med['svg']:.2f}", "", "", "≤ 5")
    return result


if __name__ == "__main__":
    main()
