"""Where a hot path spends its time: py-spy under wrk load, summarised per function.

    python -m bench.profile [--figures verify,mint,settle,lookup,grant] [--seconds 8]

Same throwaway servers, seed and request files as ``python -m bench``; ecert runs with one
worker so that one sampled process carries the whole load. For each figure, py-spy samples the
worker while wrk drives the route, and the summary lists the functions holding the most samples
(inclusive, and own time), which is the "flame summary" quoted in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.__main__ import add_contributions, figures, prepare, wrk
from bench.harness import bench_env, ecert_serve, seed, serve
from ecert.db.migrate import upgrade
from tests import servers

NAMES = {
    "mint": "QR mint",
    "verify": "online verify",
    "settle": "settle (64 connections)",
    "lookup": "contribution lookup",
    "preview": "settlement preview",
    "grant": "person-token grant",
}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]+):(?P<line>\d+)\)$")


def summarise(raw: Path, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():  # py-spy's own lines (e.g. the Python version), no sample
            continue
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            match = FRAME.match(frame)
            if match is None:
                names.append(frame)
                continue
            file = match["file"]
            short = file.split("site-packages/")[-1].split("/work/main/")[-1]
            names.append(f"{match['func']} ({short})")
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count
    scale = 100 / max(total, 1)
    return (
        [(n, c * scale) for n, c in inclusive.most_common(top)],
        [(n, c * scale) for n, c in own.most_common(top)],
    )


def worker_pid(master: int) -> int:
    """uvicorn's one worker (or the master itself when it serves in-process)."""
    for child in Path("/proc").glob("[0-9]*"):
        try:
            if f"PPid:\t{master}\n" in (child / "status").read_text():
                return int(child.name)
        except OSError:
            continue
    return master


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--figures", default="verify,mint,settle,lookup")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--codes", type=int, default=8000)
    parser.add_argument("--bills", type=int, default=4000)
    parser.add_argument("--grants", type=int, default=3000)
    parser.add_argument("--out", default="", help="folder for the raw py-spy files")
    parser.add_argument(
        "--native", action="store_true", help="sample C frames too (uvloop, asyncpg, OpenSSL)"
    )
    args = parser.parse_args()
    console = Console()
    spy = str(Path(sys.executable).with_name("py-spy"))
    with (
        tempfile.TemporaryDirectory() as data,
        servers.postgres() as db_url,
        servers.redis() as (redis_url, _),
    ):
        env = bench_env(db_url, redis_url, data)
        upgrade(db_url)
        seeded = asyncio.run(seed(env, 200))
        asyncio.run(add_contributions(env))
        port = servers.free_port()
        base = f"http://127.0.0.1:{port}"
        out = Path(args.out or data)
        out.mkdir(parents=True, exist_ok=True)
        with serve(ecert_serve(port, 1), port, env) as process:
            files = asyncio.run(
                prepare(base, env, seeded, Path(data), args.codes, args.bills, args.grants)
            )
            plan = {
                f.name: f for f in figures(base, base, files, args.codes, args.bills, args.grants)
            }
            pid = worker_pid(process.pid)
            for short in args.figures.split(","):
                figure = plan[NAMES[short]]
                raw = out / f"{short}.txt"
                result: dict[str, float] = {}
                load = threading.Thread(
                    target=lambda f=figure, r=result: r.update(wrk(f, args.seconds, 1_000_000))
                )
                load.start()
                subprocess.run(
                    [
                        spy,
                        "record",
                        "--format",
                        "raw",
                        # py-spy pauses the worker to read C stacks; else it reads it running.
                        *(["--native"] if args.native else ["--nonblocking"]),
                        "-r",
                        "200",
                        "-d",
                        str(max(1, int(args.seconds) - 1)),
                        "-o",
                        str(raw),
                        "-p",
                        str(pid),
                    ],
                    check=True,
                    capture_output=True,
                )
                load.join()
                inclusive, own = summarise(raw, args.top)
                table = Table(title=f"{figure.name}: {result.get('rps', 0):,.0f} req/s (1 worker)")
                table.add_column("inclusive %", justify="right")
                table.add_column("function")
                table.add_column("own %", justify="right")
                table.add_column("function (own time)")
                for (a, x), (b, y) in zip(inclusive, own, strict=False):
                    table.add_row(f"{x:.1f}", a, f"{y:.1f}", b)
                console.print(table)


if __name__ == "__main__":
    main()
