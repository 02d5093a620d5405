"""Import throughput and memory on PostgreSQL, at two file sizes.

    python -m bench.imports [--persons 20000] [--months 12]

Generates persons and contributions files (not committed), runs ``ecert import`` for each in a
child process on a throwaway PostgreSQL, and reports rows/s and the child's peak RSS. Peak RSS
that stays flat while the file grows tenfold is what "constant memory" means here.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ecert.db.migrate import upgrade
from ecert.identity import make_id_number
from tests import servers

AREAS = ("370102", "110105", "310115")


def write_files(folder: Path, persons: int, months: int) -> tuple[Path, Path]:
    people_file, contributions_file = (
        folder / f"persons-{persons}.csv",
        folder / f"contributions-{persons}.csv",
    )
    with people_file.open("w", newline="") as p, contributions_file.open("w", newline="") as c:
        pw, cw = csv.writer(p), csv.writer(c)
        pw.writerow(["id_number", "name", "area", "category"])
        cw.writerow(
            [
                "id_number",
                "month",
                "base",
                "employer_amount",
                "employee_amount",
                "account_credit",
                "status",
            ]
        )
        for i in range(persons):
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000)
            number = make_id_number(AREAS[i % 3], birth, i % 1000)
            pw.writerow([number, f"测试{i}", AREAS[i % 3], "employee"])
            for m in range(months):
                cw.writerow([number, f"2025{m % 12 + 1:02d}", 800000, 64000, 16000, 16000, "paid"])
    return people_file, contributions_file


def run_import(env: dict[str, str], kind: str, path: Path) -> tuple[float, float, int]:
    """(seconds, child peak RSS in MB, rows) for one ``ecert import``."""
    rows = sum(1 for _ in path.open()) - 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ecert.cli", "import", kind, str(path)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    console = Console()
    table = Table(title="ecert import on PostgreSQL (child process per file)")
    for column in ("file", "rows", "seconds", "rows/s", "peak RSS MB"):
        table.add_column(column)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    with tempfile.TemporaryDirectory() as folder:
        for size in (args.persons // 10, args.persons):
            with servers.postgres() as db_url:
                env = {
                    **os.environ,
                    "ECERT_DATABASE_URL": db_url,
                    "ECERT_DATA_DIR": folder,
                    "ECERT_PII_KEYS": f"b1:{key}",
                    "ECERT_HASH_KEY": key,
                    "ECERT_ENV": "development",  # PostgreSQL without Redis
                }
                upgrade(db_url)
                with console.status(f"generating {size} persons"):
                    people, contributions = write_files(Path(folder), size, args.months)
                for kind, path in (("persons", people), ("contributions", contributions)):
                    with console.status(f"importing {path.name}"):
                        seconds, rss, rows = run_import(env, kind, path)
                    table.add_row(
                        path.name,
                        f"{rows:,}",
                        f"{seconds:.1f}",
                        f"{rows / seconds:,.0f}",
                        f"{rss:.0f}",
                    )
    console.print(table)
    console.print(
        "Peak RSS is the largest child so far (getrusage), so it can only grow: "
        "compare the rows of the small and the large files."
    )


if __name__ == "__main__":
    main()
