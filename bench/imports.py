"""Import throughput and memory on PostgreSQL, at two file sizes, beside a plain ``COPY``.

    python -m bench.imports [--persons 20000] [--months 12]

Generates persons and contributions files (not committed), runs ``ecert import`` for each in a
child process on a throwaway PostgreSQL, and reports rows/s and the child's peak RSS. Peak RSS
that stays flat while the file grows tenfold is what "constant memory" means here.

The reference (issue 15): the rows ecert wrote, read back (every column, values already
prepared: ciphertexts, hashes, ids) and ``COPY``ed (asyncpg's binary copy) into an unindexed
copy of the target table, ``CREATE TABLE … (LIKE target INCLUDING DEFAULTS)``. Target: ecert's
rows/s ≥ 0.30 × the COPY's.
"""

from __future__ import annotations

import argparse
import asyncio
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

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from rich.console import Console
from rich.table import Table

from ecert.db.migrate import upgrade
from ecert.identity import make_id_number
from tests import servers

AREAS = ("370102", "110105", "310115")
TARGET = 0.30
TABLES = {"persons": "persons", "contributions": "contributions"}


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


def startup(env: dict[str, str]) -> float:
    """Seconds to start the child and load ecert (``ecert --help``), taken off each import's."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ecert.cli", "--help"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


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


async def copy_reference(db_url: str, table: str) -> tuple[float, float, int]:
    """(seconds into an unindexed copy, seconds into a fully constrained copy, rows): ``COPY``
    of the rows ecert wrote to ``table``. The second copy has the table's indexes, checks and
    foreign keys (``INCLUDING ALL`` plus the foreign keys): the ceiling any import into the real
    table meets before doing any work of its own."""
    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        # Names are this module's constants, never input.
        records = await connection.fetch(f"SELECT * FROM {table}")  # noqa: S608
        columns = list(records[0].keys()) if records else []
        values = [tuple(r) for r in records]
        await connection.execute(f"CREATE TABLE plain_{table} (LIKE {table} INCLUDING DEFAULTS)")
        await connection.execute(f"CREATE TABLE constrained_{table} (LIKE {table} INCLUDING ALL)")
        for (definition,) in await connection.fetch(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'f'",
            table,
        ):
            await connection.execute(f"ALTER TABLE constrained_{table} ADD {definition}")
        seconds = []
        for target in (f"plain_{table}", f"constrained_{table}"):
            started = time.perf_counter()
            await connection.copy_records_to_table(target, records=values, columns=columns)
            seconds.append(time.perf_counter() - started)
        return seconds[0], seconds[1], len(records)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    console = Console(width=150)
    table = Table(title="ecert import on PostgreSQL (child process per file)")
    for column in (
        "file",
        "rows",
        "seconds",
        "ecert rows/s",
        "COPY rows/s",
        "ratio",
        f"target ≥ {TARGET:.2f} ×",
        "COPY into constrained copy",
        "peak RSS MB",
    ):
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
                        seconds = max(seconds - startup(env), 0.001)
                    with console.status(f"COPY of the same {kind} rows"):
                        plain, constrained, copied = asyncio.run(
                            copy_reference(db_url, TABLES[kind])
                        )
                    ours, reference = rows / seconds, copied / plain
                    table.add_row(
                        path.name,
                        f"{rows:,}",
                        f"{seconds:.1f}",
                        f"{ours:,.0f}",
                        f"{reference:,.0f}",
                        f"{ours / reference:.2f} ×",
                        "met" if ours / reference >= TARGET else "not met",
                        f"{copied / constrained:,.0f}/s ({plain / constrained:.2f} ×)",
                        f"{rss:.0f}",
                    )
    console.print(table)
    console.print(
        "Peak RSS is the largest child so far (getrusage), so it can only grow: "
        "compare the rows of the small and the large files. Seconds are the import's: the "
        "time to start the child and load ecert (`ecert --help`) is taken off. 'COPY into "
        "constrained copy': the same COPY into a copy with the table's indexes, checks and "
        "foreign keys, and its ratio to the unindexed one; no import into the real table can "
        "beat it."
    )


if __name__ == "__main__":
    main()
