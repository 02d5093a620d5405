"""``ecert import KIND FILE``: a file from the core system, streamed, in batches."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ecert.cli.common import os_login, run_with_runtime
from ecert.server.runtime import Runtime


@click.command("import")
@click.argument(
    "kind",
    type=click.Choice(
        ["persons", "enrolments", "contributions", "policies", "institutions", "catalogue"]
    ),
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="Default: from the file name (.csv, else JSON Lines).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected lines go (default: FILE.rejects.jsonl).",
)
def import_command(kind: str, file: Path, fmt: str | None, rejects: Path | None) -> None:
    """Import a file from the core system, streamed, in batches; bad lines go to a reject file.

    Files are CSV with a header row or JSON Lines with the same keys (docs/import.md); policies are
    JSON Lines only. Re-importing the same file changes nothing.
    """
    import msgspec
    from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

    from ecert.imports.readers import detect, rows
    from ecert.imports.schemas import Reject
    from ecert.imports.services import run_import
    from ecert.security.audit import record_audit
    from ecert.security.tokens import Principal

    fmt = fmt or detect(file.name)
    if kind == "policies" and fmt != "jsonl":
        raise click.UsageError("policies are nested: give them as JSON Lines")
    reject_path = rejects or file.with_name(file.name + ".rejects.jsonl")
    counts = {"rejected": 0}

    size = file.stat().st_size

    # A command-line program with one task: reading the file in the event loop blocks nothing else.
    async def work(runtime: Runtime) -> int:
        with (
            open(file, encoding="utf-8-sig", newline="") as handle,  # noqa: ASYNC230
            open(reject_path, "w", encoding="utf-8") as out,  # noqa: ASYNC230
            Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn()) as bar,
        ):
            task = bar.add_task(f"importing {kind}", total=size)

            def rejected(reject: Reject) -> None:
                counts["rejected"] += 1
                out.write(msgspec.json.encode(reject).decode() + "\n")

            pending = 0

            def advance(line: str) -> None:
                # The bar moves every 64 kB: a redraw a line costs more than parsing the line.
                nonlocal pending
                pending += len(line.encode())
                if pending >= 65536:
                    bar.advance(task, pending)
                    pending = 0

            landed = await run_import(
                runtime, kind, rows(handle, fmt, on_line=advance), on_reject=rejected
            )
            bar.advance(task, pending)
        # Who imported what, like the agency API's import: the operator's login names the actor.
        operator = Principal(f"cli:{os_login()}"[:64], "operator")
        async with runtime.sessions.begin() as session:
            await record_audit(
                session,
                operator,
                None,
                f"import.{kind}",
                "ok",
                {"accepted": landed, "rejected": counts["rejected"], "file": file.name},
            )
        return landed

    accepted = run_with_runtime(work)
    click.echo(
        json.dumps(
            {
                "kind": kind,
                "accepted": accepted,
                "rejected": counts["rejected"],
                "rejects": str(reject_path),
            }
        )
    )
