"""``ecert errors-doc``: docs/errors.md from the registry of problem codes."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("errors-doc")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the file (e.g. docs/errors.md) instead of printing it.",
)
def errors_doc(output: Path | None) -> None:
    """Print docs/errors.md: every problem code with its status, title and meaning."""
    from ecert.errorcodes import render_markdown

    if output is None:
        click.echo(render_markdown(), nl=False)
    else:
        output.write_text(render_markdown(), encoding="utf-8")
