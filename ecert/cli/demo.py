"""``ecert demo`` and ``ecert demo-assertion``: the embedded demo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ecert.cli.common import run_with_runtime
from ecert.cli.serve import serve
from ecert.config import get_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--people", default=300, show_default=True, type=int, help="Demo people to seed.")
@click.option("--serve/--no-serve", "start", default=True, help="Start the server after seeding.")
def demo(host: str, port: int, people: int, start: bool) -> None:
    """Migrate, seed demo people, institutions and clients, start the server, print what to try."""
    from ecert.db.migrate import upgrade
    from ecert.demo import print_guide, seed_demo

    # The demo pages sign in through a demo-only route; the served app reads this from the env.
    os.environ["ECERT_DEMO_SIGNIN"] = "true"
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.effective_database_url)
    credentials = run_with_runtime(lambda runtime: seed_demo(runtime, people=people))
    path = Path(settings.data_dir) / "demo-credentials.json"
    if credentials["clients"] is not None:
        path.write_text(json.dumps(credentials, indent=2, ensure_ascii=False))
        path.chmod(0o600)
    elif path.exists():  # clients were registered by an earlier run; their secrets are in the file
        staff = credentials.get("staff")
        credentials = json.loads(path.read_text())
        if staff:  # staff accounts added to a demo made before they existed
            credentials["staff"] = staff
            path.write_text(json.dumps(credentials, indent=2, ensure_ascii=False))
    print_guide(credentials, f"http://{host}:{port}", path)
    if start:
        sys.stdout.flush()
        ctx = click.get_current_context()
        ctx.invoke(
            serve,
            host=host,
            port=port,
            workers=1,
            migrate=False,
            timeout_keep_alive=None,
            timeout_graceful_shutdown=None,
            forwarded_allow_ips=None,
        )


@click.command("demo-assertion")
@click.option(
    "--person",
    default=0,
    show_default=True,
    type=int,
    help="Index of the demo person in demo-credentials.json.",
)
def demo_assertion(person: int) -> None:
    """Print a fresh person assertion signed by the demo channel (for the JWT-bearer grant)."""
    from ecert.demo import make_assertion

    settings = get_settings()
    path = Path(settings.data_dir) / "demo-credentials.json"
    if not path.exists():
        raise click.ClickException("run `ecert demo` first")
    click.echo(make_assertion(json.loads(path.read_text()), person, settings.issuer_url))
