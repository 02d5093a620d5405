"""The ``ecert`` command: serve, migrate, register clients, seed a demo."""

from __future__ import annotations

import click
from cryptography.exceptions import InvalidTag

from ecert.cli import (
    audit,
    cards,
    clients,
    db,
    demo,
    docs,
    imports,
    keys,
    pii,
    purge,
    serve,
    verify,
)
from ecert.cli.common import run_with_runtime
from ecert.cli.counter import register as register_counter
from ecert.cli.staff import register as register_staff
from ecert.config import ConfigurationError
from ecert.security.pii import PiiKeyMissing

#: Exit status for a configuration error (like a usage error: the operator must change something).
CONFIG_EXIT = 2


class EcertGroup(click.Group):
    """Turns a configuration error raised by any command into one sentence and exit status 2.

    Settings are read lazily (``verify`` works offline without any), so the error can surface in
    any command; catching it here covers all of them, not a traceback with exit status 1.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            message = str(exc)
        except PiiKeyMissing as exc:
            message = (
                f"this database holds rows sealed with PII key {exc.kid!r}, which this process "
                "does not have: add it to ECERT_PII_KEYS (or the key file)."
            )
        except InvalidTag:
            message = (
                "the PII keys do not decrypt this database's signing keys: ECERT_PII_KEYS "
                "(or the key file) is not the key set this database was written with."
            )
        click.echo(f"ecert: configuration error: {message}", err=True)
        ctx.exit(CONFIG_EXIT)


@click.group(cls=EcertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecert")
def main() -> None:
    """ecert: electronic medical insurance certificates.

    Settings come from ECERT_* environment variables (see docs/operations.md); with none set,
    ecert runs embedded on a SQLite file and an in-process store in ./ecert-data. A PostgreSQL
    URL (or ECERT_ENV=production) demands explicit Redis, keys and issuer; configuration errors
    exit with status 2.
    """


for command in (
    serve.serve,
    db.db,
    clients.clients,
    keys.keys_group,
    pii.pii_group,
    imports.import_command,
    audit.audit_group,
    purge.purge_command,
    cards.cards_group,
    verify.verify_command,
    demo.demo,
    demo.demo_assertion,
    docs.errors_doc,
):
    main.add_command(command)
register_counter(main, run_with_runtime)  # cards report|formal|…, ecerts, audit show
register_staff(main, run_with_runtime)  # staff add|disable|enable|reset


if __name__ == "__main__":  # pragma: no cover
    main()
