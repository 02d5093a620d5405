"""``ecert cards sweep`` (the counter's ``cards report|formal|…`` are in counter.py)."""

from __future__ import annotations

import json

import click

from ecert.cli.common import run_with_runtime
from ecert.server.runtime import Runtime


@click.group("cards")
def cards_group() -> None:
    """Physical social security cards."""


@cards_group.command("sweep")
def cards_sweep() -> None:
    """Restore cards whose provisional loss report lapsed (no formal report in time)."""
    from ecert.cards.services import sweep

    async def work(runtime: Runtime) -> int:
        async with runtime.sessions.begin() as session:
            return await sweep(session)

    click.echo(json.dumps({"restored": run_with_runtime(work)}))
