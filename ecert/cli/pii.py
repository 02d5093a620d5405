"""``ecert pii check|reencrypt|rehash|audit-key``: the PII keys."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import click

from ecert.cli.common import run_with_runtime
from ecert.config import ConfigurationError, get_settings
from ecert.server.runtime import Runtime


async def check_pii_keys(runtime: Runtime) -> None:
    from ecert.security.piimaint import missing_kids

    async with runtime.sessions() as session:
        missing = await missing_kids(session, runtime.cipher)
    if missing:
        raise ConfigurationError(
            f"rows of this database are sealed with PII key(s) {', '.join(sorted(missing))} "
            "that this process does not hold: add them to ECERT_PII_KEYS (or the key file); "
            "keys and database go together (restore both from the same backup)."
        )


@click.group("pii")
def pii_group() -> None:
    """PII keys: check, re-encrypt, re-hash (docs/operations.md, *Rotate the PII keys*)."""


@pii_group.command("check")
def pii_check() -> None:
    """Exit 2 naming any PII key id that recent rows or the signing keys use and this lacks."""

    async def work(runtime: Runtime) -> None:
        await check_pii_keys(runtime)
        async with runtime.sessions() as session:
            from ecert.security.keys import ensure_active_keys

            await ensure_active_keys(session, runtime.cipher)  # decrypts: a wrong key shows

    run_with_runtime(work)
    click.echo(json.dumps({"pii_keys": "ok"}))


_BATCH = click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rows per transaction.",
)


def _walk(
    label: str, total: int, step: Callable[[object], Awaitable[tuple[int, int, object]]]
) -> Awaitable[int]:
    """Run ``step`` from the first primary key to the last under a progress bar; rows changed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    async def run() -> int:
        changed, after = 0, None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()) as bar:
            task = bar.add_task(label, total=total)
            while True:
                seen, done, after = await step(after)
                changed += done
                bar.advance(task, seen)
                if not seen:
                    return changed

    return run()


@pii_group.command("reencrypt")
@_BATCH
def pii_reencrypt(batch_size: int) -> None:
    """Seal every encrypted column with the active PII key (ECERT_PII_ACTIVE_KEY).

    One transaction a batch, in primary-key order; interrupted, run it again: rows already under
    the active key are skipped. Afterwards the other keys can be dropped.
    """
    from ecert import persons
    from ecert.security import piimaint
    from ecert.security import repositories as security_repositories

    async def work(runtime: Runtime) -> tuple[str, dict[str, int]]:
        result: dict[str, int] = {}
        for model, column, context in (*persons.SEALED_COLUMNS, *piimaint.CIPHER_COLUMNS):
            async with runtime.sessions() as session:
                total = await security_repositories.row_count(session, model)

            async def step(
                after: object, model: Any = model, column: str = column, context: str = context
            ) -> tuple[int, int, object]:
                async with runtime.sessions.begin() as session:
                    batch = await piimaint.reencrypt_batch(
                        session, runtime.cipher, model, column, context, after, batch_size
                    )
                return batch.seen, batch.changed, batch.last

            name = f"{model.__tablename__}.{column}"
            result[name] = await _walk(f"re-encrypting {name}", total, step)
        return runtime.cipher.active_kid, result

    active, changed = run_with_runtime(work)
    click.echo(json.dumps({"active": active, "changed": changed}))


@pii_group.command("rehash")
@_BATCH
def pii_rehash(batch_size: int) -> None:
    """Give every person the active hash key's lookup hash (ECERT_HASH_ACTIVE_KEY).

    Needs the active and the old hash keys in ECERT_HASH_KEY (``hid:key,hid:key``) so the service
    finds people by either while it runs. Batched and resumable like ``reencrypt``. Client
    secrets cannot be re-hashed (only their hash is stored): each moves to the active key on the
    client's next token request; one that has not moved when the old key is dropped needs
    ``ecert clients rotate-secret``.
    """
    from ecert import persons
    from ecert.db.models import Person
    from ecert.security import repositories as security_repositories

    async def work(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            total = await security_repositories.row_count(session, Person)

        async def step(after: object) -> tuple[int, int, object]:
            async with runtime.sessions.begin() as session:
                batch = await persons.rehash_batch(session, runtime.cipher, after, batch_size)
            return batch.seen, batch.changed, batch.last

        return await _walk("re-hashing persons.id_hash", total, step)

    try:
        changed = run_with_runtime(work)
    except persons.DuplicatePerson as exc:  # the batches before it are committed
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"changed": {"persons.id_hash": changed}}))


@pii_group.command("audit-key")
def pii_audit_key() -> None:
    """Print the audit key in use (base64url), to pin as ECERT_AUDIT_KEY before a hash key
    rotation: unpinned, it is derived from the hash key and would change with it."""
    import base64

    from ecert.security.auditchain import derive_key
    from ecert.security.pii import load_cipher

    settings = get_settings()
    key = derive_key(settings, load_cipher(settings))
    click.echo(base64.urlsafe_b64encode(key).rstrip(b"=").decode())
