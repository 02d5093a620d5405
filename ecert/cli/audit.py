"""``ecert audit verify|purge``: the audit chain (``audit show`` is a counter command)."""

from __future__ import annotations

import json
import sys

import click

from ecert.cli.common import batch_options, run_with_runtime
from ecert.server.runtime import Runtime


@click.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; exit 1 naming the first row deleted, changed or out of place."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ecert.ops.metrics import record_audit_result
    from ecert.security import auditchain

    async def work(runtime: Runtime) -> tuple[int, auditchain.Break | None]:
        async with runtime.sessions() as session:
            total = await auditchain.count(session)
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
            ) as bar:
                task = bar.add_task("checking audit rows", total=total)
                found = await auditchain.verify(
                    session, auditchain.audit_key(runtime), lambda: bar.advance(task)
                )
        # For the ecert_audit_chain_* gauges every worker's /metrics reports.
        await record_audit_result(runtime, found is None, total)
        return total, found

    total, found = run_with_runtime(work)
    if found is not None:
        click.echo(f"audit chain broken at {found}", err=True)
        sys.exit(1)
    click.echo(json.dumps({"rows": total, "intact": True}))


@audit_group.command("purge")
@batch_options("Rows deleted (and one anchor written) per transaction.")
def audit_purge(dry_run: bool, batch_size: int) -> None:
    """Delete audit rows older than ECERT_RETENTION_AUDIT_DAYS, leaving a MACed anchor so that
    `ecert audit verify` still verifies. PostgreSQL: run as the tables' owner role."""
    import datetime as dt

    from sqlalchemy.exc import DBAPIError

    from ecert.clock import utcnow
    from ecert.security import auditchain, auditpurge

    async def work(runtime: Runtime) -> int:
        cutoff = utcnow() - dt.timedelta(days=runtime.settings.retention_audit_days)
        if dry_run:
            async with runtime.sessions() as session:
                return await auditpurge.count_purgeable(session, cutoff)
        key = auditchain.audit_key(runtime)
        return await auditpurge.purge_audit(runtime.sessions, key, cutoff, batch=batch_size)

    try:
        rows = run_with_runtime(work)
    except DBAPIError as exc:  # the message may quote values; the SQLSTATE says enough
        sqlstate = getattr(exc.orig, "sqlstate", None)
        raise click.ClickException(
            f"the audit purge was refused (SQLSTATE {sqlstate}): on PostgreSQL it must run as "
            "the owner of audit_events (the role that runs `ecert db upgrade`)"
        ) from exc
    click.echo(json.dumps({"dry_run": dry_run, "rows": rows}))
