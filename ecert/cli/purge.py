"""``ecert purge``: single-use marks, tokens, codes and idempotency rows past retention."""

from __future__ import annotations

import json

import click

from ecert.cli.common import batch_options, run_with_runtime
from ecert.server.runtime import Runtime


@click.command("purge")
@batch_options("Rows deleted per transaction.")
def purge_command(dry_run: bool, batch_size: int) -> None:
    """Delete single-use marks, tokens, codes and idempotency records past ECERT_RETENTION_*.

    Safe from cron and alongside traffic: small batches, each its own transaction; a second run
    finds nothing more to do. On PostgreSQL it first runs `ecert db partitions` (partitions
    dropped whole are not counted in the rows). Prints the rows per table as JSON.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ecert.clock import utcnow
    from ecert.ops.partitions import maintain
    from ecert.ops.purge import count_expired, purge

    parts: dict[str, object] = {"created": [], "dropped": []}

    async def work(runtime: Runtime) -> dict[str, int]:
        now = utcnow()
        if not dry_run:  # PostgreSQL: whole days go by partition first, the rest row by row
            done = await maintain(runtime.engine, runtime.settings, now=now)
            parts.update(created=done.created, dropped=done.dropped)
            if done.skipped:  # the application role: the rows still go by DELETE below
                parts["skipped"] = done.skipped
        expired = await count_expired(runtime.engine, runtime.settings, now)
        if dry_run:
            return expired
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
        ) as bar:
            tasks = {name: bar.add_task(f"purging {name}", total=n) for name, n in expired.items()}
            return await purge(
                runtime.engine,
                runtime.settings,
                now=now,
                batch=batch_size,
                advance=lambda name, n: bar.advance(tasks[name], n),
            )

    counts = run_with_runtime(work)
    click.echo(json.dumps({"dry_run": dry_run, "rows": counts, "partitions": parts}))
