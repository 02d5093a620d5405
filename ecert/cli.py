"""The ``ecert`` command: serve, migrate, register clients, seed a demo."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography.exceptions import InvalidTag

from ecert.cli_counter import register as register_counter
from ecert.cli_staff import register as register_staff
from ecert.config import ConfigurationError, get_settings
from ecert.security.pii import PiiKeyMissing
from ecert.server.runtime import Runtime, build_runtime

T = TypeVar("T")

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


def run_with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime built from the environment, and dispose of it after."""

    async def main() -> T:
        runtime = build_runtime(get_settings())
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())


def _login() -> str:
    """The operator's login name; the uid where the system has no name for it (containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


@click.group(cls=EcertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecert")
def main() -> None:
    """ecert: electronic medical insurance certificates.

    Settings come from ECERT_* environment variables (see docs/operations.md); with none set,
    ecert runs embedded on a SQLite file and an in-process store in ./ecert-data. A PostgreSQL
    URL (or ECERT_ENV=production) demands explicit Redis, keys and issuer; configuration errors
    exit with status 2.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply migrations first (default: only on the embedded SQLite database).",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(1, 3600),
    help="Idle keep-alive seconds; above the balancer's idle timeout "
    "(default: ECERT_SERVE_KEEP_ALIVE_S, 75).",
)
@click.option(
    "--timeout-graceful-shutdown",
    type=click.IntRange(1, 600),
    help="Seconds in-flight requests may take after the drain grace "
    "(default: ECERT_SERVE_GRACEFUL_SHUTDOWN_S, 20).",
)
@click.option(
    "--forwarded-allow-ips",
    help="CIDR networks of the proxies whose X-Forwarded-For is believed "
    "(sets ECERT_TRUSTED_PROXIES for the workers).",
)
def serve(
    host: str,
    port: int,
    workers: int,
    migrate: bool | None,
    timeout_keep_alive: int | None,
    timeout_graceful_shutdown: int | None,
    forwarded_allow_ips: str | None,
) -> None:
    """Run the HTTP API under uvicorn."""
    import uvicorn

    from ecert.db.migrate import upgrade

    if forwarded_allow_ips is not None:
        from ecert.server.ratelimit import parse_networks

        try:
            parse_networks(forwarded_allow_ips)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--forwarded-allow-ips") from exc
        # ecert resolves X-Forwarded-For itself (rate limits, logs); uvicorn's proxy headers stay
        # off so the peer address is not rewritten twice. Workers read it from the environment.
        os.environ["ECERT_TRUSTED_PROXIES"] = forwarded_allow_ips
        get_settings.cache_clear()
    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        raise click.UsageError(
            "the in-process store is single-process only: set ECERT_REDIS_URL to run workers > 1"
        )
    if migrate or (migrate is None and settings.is_sqlite):
        upgrade(settings.effective_database_url)
    # Load the keys once here: a wrong key or an unreachable database is then one sentence
    # from this process, not a traceback from every worker's start-up.
    from sqlalchemy.exc import DBAPIError

    try:
        run_with_runtime(_preflight)
    except (OSError, DBAPIError) as exc:  # the URL is not echoed: it may carry a password
        raise click.ClickException(
            f"the database does not answer ({type(exc).__name__}); check ECERT_DATABASE_URL "
            "and run `ecert db upgrade` on a new database"
        ) from exc
    with _metrics_dir(workers):
        uvicorn.run(
            "ecert.server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            timeout_keep_alive=timeout_keep_alive or settings.serve_keep_alive_s,
            timeout_graceful_shutdown=timeout_graceful_shutdown
            or settings.serve_graceful_shutdown_s,
        )


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers share their metrics through files in a fresh directory, removed after.

    A worker process reads ``PROMETHEUS_MULTIPROC_DIR`` when it imports prometheus_client, so
    the variable is set before uvicorn starts them; a single worker (this process, which has
    imported it already) keeps its metrics in memory.
    """
    if workers <= 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ecert-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


async def _preflight(runtime: Runtime) -> None:
    from ecert.cards.workdays import calendar
    from ecert.security.keys import ensure_active_keys

    calendar(runtime.settings.workday_file)  # a missing or malformed ECERT_WORKDAY_FILE
    await _check_pii_keys(runtime)
    async with runtime.sessions.begin() as session:
        await ensure_active_keys(session, runtime.cipher)
    await runtime.refresh_keys()


async def _check_pii_keys(runtime: Runtime) -> None:
    from ecert.security.piimaint import missing_kids

    async with runtime.sessions() as session:
        missing = await missing_kids(session, runtime.cipher)
    if missing:
        raise ConfigurationError(
            f"rows of this database are sealed with PII key(s) {', '.join(sorted(missing))} "
            "that this process does not hold: add them to ECERT_PII_KEYS (or the key file); "
            "keys and database go together (restore both from the same backup)."
        )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply the packaged migrations to ECERT_DATABASE_URL (or the embedded SQLite file)."""
    from ecert.db.migrate import upgrade

    url = get_settings().effective_database_url
    upgrade(url, revision)
    click.echo(f"database upgraded to {revision}")


def _schema() -> dict[str, object]:
    from ecert.db.migrate import database_heads, schema_state, script_heads, script_revisions

    async def work(runtime: Runtime) -> set[str]:
        return await database_heads(runtime.engine)

    found, expected = run_with_runtime(work), script_heads()
    state = schema_state(found, expected, script_revisions())
    return {"database": sorted(found), "packaged": sorted(expected), "state": state}


@db.command("current")
def db_current() -> None:
    """Print the revision(s) the database is at, the packaged head(s) and the state; exit 0."""
    click.echo(json.dumps(_schema()))


@db.command("downgrade")
@click.argument("revision")
@click.option(
    "--yes", is_flag=True, help="Do not ask: the downgrade drops what later migrations added."
)
def db_downgrade(revision: str, yes: bool) -> None:
    """Undo migrations down to REVISION (e.g. 0006; see `ecert db current`).

    Destructive: columns and tables added after REVISION are dropped with their data. Run it
    only with the release that matches REVISION stopped or compatible (docs/upgrading.md).
    """
    from ecert.db.migrate import downgrade

    if not yes:
        click.confirm(
            f"downgrade the database to {revision}, dropping what later migrations added?",
            abort=True,
        )
    downgrade(get_settings().effective_database_url, revision)
    click.echo(json.dumps({"downgraded_to": revision, **_schema()}))


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does, in a few words.")
def db_revision(message: str) -> None:
    """Write the next numbered migration, autogenerated from the models against the database.

    Upgrade the database first (``ecert db upgrade``); read and trim the file before committing:
    autogenerate misses renames and data moves (docs/upgrading.md).
    """
    from ecert.db.migrate import new_revision

    path = new_revision(get_settings().effective_database_url, message)
    click.echo(str(path))


@db.command("check")
def db_check() -> None:
    """Exit 1 when the database is behind the packaged migrations (run ``ecert db upgrade``).

    ``ahead`` (a newer release migrated first) exits 0: this release still runs on it.
    """
    schema = _schema()
    click.echo(json.dumps(schema))
    if schema["state"] == "behind":
        sys.exit(1)


@db.command("partitions")
@click.option(
    "--ahead",
    default=7,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Days of partitions to have ready, today included.",
)
def db_partitions(ahead: int) -> None:
    """PostgreSQL: create the short-lived tables' daily partitions ahead and drop those past
    ECERT_RETENTION_* (run daily; `ecert purge` runs it too). SQLite: nothing to do.

    Prints {created, dropped} as JSON; a second run the same day changes nothing.
    """
    from ecert.clock import utcnow
    from ecert.ops.partitions import maintain

    async def work(runtime: Runtime) -> dict[str, list[str]]:
        done = await maintain(runtime.engine, runtime.settings, now=utcnow(), ahead=ahead)
        if done.skipped:
            raise click.ClickException(done.skipped)
        return {"created": done.created, "dropped": done.dropped}

    click.echo(json.dumps(run_with_runtime(work)))


@main.group()
def clients() -> None:
    """API clients: channels, institutions, the agency, other provinces."""


@clients.command("add")
@click.option(
    "--kind", type=click.Choice(["channel", "institution", "agency", "province"]), required=True
)
@click.option(
    "--name", required=True, help="Display name (the institution's name for institutions)."
)
@click.option("--code", help="Institution code, e.g. H37010200001 (hospital) or P37010200001.")
@click.option("--level", type=click.Choice(["1", "2", "3", "community"]), help="Hospital level.")
@click.option(
    "--area", help="6-digit area code of the institution (or the province's issuing area)."
)
@click.option(
    "--public-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key: the client authenticates with private_key_jwt, no secret.",
)
@click.option("--scopes", help="Space-separated scopes (default depends on the kind).")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    help="Requests a minute for this client (default: ECERT_CLIENT_RATE_LIMIT_PER_MINUTE).",
)
def clients_add(
    kind: str,
    name: str,
    code: str | None,
    level: str | None,
    area: str | None,
    public_key_file: Path | None,
    scopes: str | None,
    rate_limit: int | None,
) -> None:
    """Register a client; prints {client_id, client_secret} once (no secret with a public key);
    institutions also get their national gateway signing key (gateway_key), shown once."""
    import msgspec

    from ecert.errors import EcertError
    from ecert.oauth.schemas import ClientCreated
    from ecert.oauth.services import register_client
    from ecert.security import gateway_keys

    pem = public_key_file.read_text() if public_key_file else None

    async def work(runtime: Runtime) -> ClientCreated:
        async with runtime.sessions.begin() as session:
            client, secret = await register_client(
                session,
                cipher=runtime.cipher,
                kind=kind,
                name=name,
                code=code,
                level=level,
                area=area,
                public_key_pem=pem,
                scopes=scopes,
                rate_limit=rate_limit,
            )
            await session.flush()
            signing = await gateway_keys.issue(session, runtime.cipher, client.client_id)
            return ClientCreated(
                client_id=client.client_id, client_secret=secret, gateway_key=signing
            )

    try:
        created = run_with_runtime(work)
    except EcertError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(msgspec.json.encode(created).decode())


@clients.command("list")
def clients_list() -> None:
    """Show every client: id, kind, name, institution, auth method, scopes, quota, state.

    No secrets: neither the secret hash nor the public key is printed.
    """
    from rich.console import Console
    from rich.table import Table

    from ecert.oauth.services import list_clients

    async def work(runtime: Runtime) -> list[tuple[str, ...]]:
        async with runtime.sessions() as session:
            return [
                (
                    c.client_id,
                    c.kind,
                    c.name,
                    c.institution.code if c.institution else "",
                    "private_key_jwt" if c.public_key_pem else "secret",
                    c.scopes,
                    str(c.rate_limit) if c.rate_limit else "default",
                    "active" if c.active else "disabled",
                )
                for c in await list_clients(session)
            ]

    table = Table("client_id", "kind", "name", "institution", "auth", "scopes", "rate", "state")
    for row in run_with_runtime(work):
        table.add_row(*row)
    Console(width=200).print(table)


def _set_active(client_id: str, active: bool) -> None:
    from ecert.oauth.services import set_client_active
    from ecert.security.audit import record_audit
    from ecert.security.tokens import Principal

    async def work(runtime: Runtime) -> bool:
        async with runtime.sessions.begin() as session:
            client = await set_client_active(session, client_id, active)
            if client is None:
                return False
            operator = Principal(f"cli:{_login()}"[:64], "operator")
            action = "client.enable" if active else "client.disable"
            await record_audit(session, operator, None, action, "ok", {"client_id": client_id})
            return True

    if not run_with_runtime(work):
        raise click.ClickException(f"no client with id {client_id!r}")
    click.echo(json.dumps({"client_id": client_id, "active": active}))


@clients.command("disable")
@click.argument("client_id")
def clients_disable(client_id: str) -> None:
    """Disable a client: no new tokens at once, its current tokens refused within
    ECERT_CLIENT_STATUS_REFRESH_S (every worker re-reads the client's state)."""
    _set_active(client_id, False)


@clients.command("enable")
@click.argument("client_id")
def clients_enable(client_id: str) -> None:
    """Enable a disabled client again."""
    _set_active(client_id, True)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    default=0,
    show_default=True,
    type=click.IntRange(0, 7 * 86_400),
    help="Seconds the old secret keeps working beside the new one (0: it stops at once).",
)
def clients_rotate_secret(client_id: str, grace: int) -> None:
    """Give a client a new secret, printed once as {client_id, client_secret, old_secret_until}.

    The old secret stops working at once, or after --grace seconds so the client can switch
    without an outage. Access tokens already issued stay valid until they expire (use
    `clients disable` to stop those too).
    """
    import datetime as dt

    from ecert.errors import EcertError
    from ecert.oauth.services import rotate_secret
    from ecert.security.audit import record_audit
    from ecert.security.tokens import Principal

    async def work(runtime: Runtime) -> str | None:
        async with runtime.sessions.begin() as session:
            secret = await rotate_secret(session, runtime.cipher, client_id, grace)
            if secret is not None:
                operator = Principal(f"cli:{_login()}"[:64], "operator")
                await record_audit(
                    session,
                    operator,
                    None,
                    "client.rotate_secret",
                    "ok",
                    {"client_id": client_id, "grace_s": grace},
                )
            return secret

    try:
        secret = run_with_runtime(work)
    except EcertError as exc:
        raise click.ClickException(exc.detail) from exc
    if secret is None:
        raise click.ClickException(f"no client with id {client_id!r}")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace) if grace else None
    click.echo(
        json.dumps(
            {
                "client_id": client_id,
                "client_secret": secret,
                "old_secret_until": until.isoformat(timespec="seconds") if until else None,
            }
        )
    )


@clients.command("gateway-key")
@click.argument("client_id")
def clients_gateway_key(client_id: str) -> None:
    """Issue (or replace) an institution's national gateway signing key, printed once as
    {client_id, gateway_key}; the old key stops at once. Bearer tokens are unaffected."""
    from ecert.security import gateway_keys
    from ecert.security.audit import record_audit
    from ecert.security.tokens import Principal

    async def work(runtime: Runtime) -> str | None:
        async with runtime.sessions.begin() as session:
            key = await gateway_keys.issue(session, runtime.cipher, client_id)
            if key is not None:
                operator = Principal(f"cli:{_login()}"[:64], "operator")
                await record_audit(
                    session, operator, None, "client.gateway_key", "ok", {"client_id": client_id}
                )
            return key

    key = run_with_runtime(work)
    if key is None:
        raise click.ClickException(f"no institution client with id {client_id!r}")
    click.echo(json.dumps({"client_id": client_id, "gateway_key": key}))


@main.group("keys")
def keys_group() -> None:
    """Signing keys: list, rotate, revoke."""


@keys_group.command("list")
def keys_list() -> None:
    """Show every signing key with its purpose and state (no private material)."""
    from sqlalchemy import select

    from ecert.db.models import SigningKey

    async def work(runtime: Runtime) -> list[dict[str, str | None]]:
        async with runtime.sessions() as session:
            rows = (await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all()
            return [
                {
                    "kid": r.kid,
                    "purpose": r.purpose,
                    "state": r.state,
                    "activated_at": r.activated_at.isoformat() if r.activated_at else None,
                    "publish_until": r.publish_until.isoformat() if r.publish_until else None,
                }
                for r in rows
            ]

    for row in run_with_runtime(work):
        click.echo(json.dumps(row))


@keys_group.command("rotate")
@click.option(
    "--purpose",
    type=click.Choice(["qr", "feed", "access"]),
    default="qr",
    show_default=True,
    help="Which key family to rotate.",
)
def keys_rotate(purpose: str) -> None:
    """Promote the published next key to active; the old one retires once its tokens expire."""
    from ecert.agency.services import rotate_keys

    async def work(runtime: Runtime) -> str | None:
        return await rotate_keys(runtime, purpose)

    kid = run_with_runtime(work)
    if kid is None:
        raise click.ClickException("another process rotated at the same time; run it again")
    click.echo(json.dumps({"purpose": purpose, "active": kid}))


@keys_group.command("revoke")
@click.argument("kid")
def keys_revoke(kid: str) -> None:
    """Emergency revocation: the key is unpublished and its tokens refused at once.

    Revoking the active key of a purpose promotes its next key in the same transaction; every
    worker is told through the store before this returns.
    """
    from ecert.security import keys

    async def work(runtime: Runtime) -> tuple[bool | None, bool]:
        done = await keys.revoke_now(runtime.sessions, runtime.cipher, runtime.store, kid)
        return done, bool(runtime.settings.redis_url)

    # Embedded, the server's in-process store is not ours: it reloads on its fallback interval.
    done, shared = run_with_runtime(work)
    if done is False:
        raise click.ClickException(f"no live key with kid {kid!r}")
    if done is None:
        click.echo(
            "warning: the store did not take the new key ring version; workers reload within "
            "ECERT_KEY_REFRESH_S (the verify path refuses the key's codes already)",
            err=True,
        )
    click.echo(json.dumps({"revoked": kid, "workers_told": done is True and shared}))


@main.group("pii")
def pii_group() -> None:
    """PII keys: check, re-encrypt, re-hash (docs/operations.md, *Rotate the PII keys*)."""


@pii_group.command("check")
def pii_check() -> None:
    """Exit 2 naming any PII key id that recent rows or the signing keys use and this lacks."""

    async def work(runtime: Runtime) -> None:
        await _check_pii_keys(runtime)
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

    async def work(runtime: Runtime) -> tuple[str, dict[str, int]]:
        result: dict[str, int] = {}
        for model, column, context in (*persons.SEALED_COLUMNS, *piimaint.CIPHER_COLUMNS):
            async with runtime.sessions() as session:
                total = await piimaint.count(session, model)

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
    from ecert.security import piimaint

    async def work(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            total = await piimaint.count(session, Person)

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


@main.command("import")
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
        operator = Principal(f"cli:{_login()}"[:64], "operator")
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


@main.group("audit")
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


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option(
    "--batch-size",
    default=5_000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows deleted per transaction.",
)
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


@audit_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option(
    "--batch-size",
    default=5_000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows deleted (and one anchor written) per transaction.",
)
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


@main.group("cards")
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


@main.command("verify")
@click.argument("text", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Decode the code from a photo or screenshot (zxing-cpp).",
)
@click.option("--server", help="ecert base URL to fetch the key set and revocation feed from.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A saved key set (fully offline).",
)
@click.option(
    "--feed",
    "feed_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A saved revocation feed page (with --jwks).",
)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A trust list of issuing areas and their key sources (codes of several provinces).",
)
@click.option(
    "--skew", default=5, show_default=True, type=int, help="Clock difference to accept, in seconds."
)
@click.option(
    "--feed-stale-after",
    "feed_stale_s",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Refuse (feed_stale) when the newest revocation feed held was signed longer ago.",
)
def verify_command(
    text: str | None,
    image: Path | None,
    server: str | None,
    jwks_file: Path | None,
    feed_file: Path | None,
    trust_file: Path | None,
    skew: int,
    feed_stale_s: float,
) -> None:
    """Check a QR code offline and print the verdict (exit status 1 when refused).

    Keys come from one ecert (--server, or saved --jwks/--feed files) or, for codes of several
    provinces, from a trust list (--trust; format in ecert/verify/trust.py and docs/scaling.md).
    """
    from ecert.verify.offline import OfflineVerifier
    from ecert.verify.trust import TrustList, TrustListInvalid

    if image is not None:
        from ecert.errors import EcertError
        from ecert.web.images import read_code

        # The server's decoder and its size caps: a hostile image file cannot exhaust the scanner.
        try:
            text = read_code(image.read_bytes())
        except EcertError as exc:
            raise click.ClickException(exc.detail) from exc
    if not text:
        raise click.UsageError("give the scanned TEXT or --image FILE")
    verifier: OfflineVerifier | TrustList
    if trust_file is not None:
        try:
            verifier = TrustList.from_file(trust_file, skew_s=skew, feed_stale_s=feed_stale_s)
        except TrustListInvalid as exc:
            raise click.BadParameter(str(exc), param_hint="--trust") from exc
    elif jwks_file is not None:
        verifier = OfflineVerifier.from_files(
            jwks_file, feed_file, skew_s=skew, feed_stale_s=feed_stale_s
        )
    elif server:
        verifier = OfflineVerifier.from_server(server, skew_s=skew, feed_stale_s=feed_stale_s)
    else:
        raise click.UsageError(
            "give --server URL, --jwks FILE for a fully offline check, or --trust FILE"
        )
    verdict = verifier.check(text)
    claims = verdict.claims
    click.echo(
        json.dumps(
            {
                "ok": verdict.ok,
                "code": verdict.code,
                "pseudonym": claims.sub if claims else None,
                "version": claims.ver if claims else None,
                "expires": claims.exp if claims else None,
            }
        )
    )
    if not verdict.ok:
        sys.exit(1)


@main.command()
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


@main.command("demo-assertion")
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


@main.command("errors-doc")
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


register_counter(main, run_with_runtime)  # cards report|formal|…, ecerts, audit show
register_staff(main, run_with_runtime)  # staff add|disable|enable|reset


if __name__ == "__main__":  # pragma: no cover
    main()
