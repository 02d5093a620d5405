"""``ecert clients add|list|disable|enable|rotate-secret|gateway-key``: API clients."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ecert.cli.common import os_login, run_with_runtime
from ecert.server.runtime import Runtime


@click.group()
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
            operator = Principal(f"cli:{os_login()}"[:64], "operator")
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
                operator = Principal(f"cli:{os_login()}"[:64], "operator")
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
                operator = Principal(f"cli:{os_login()}"[:64], "operator")
                await record_audit(
                    session, operator, None, "client.gateway_key", "ok", {"client_id": client_id}
                )
            return key

    key = run_with_runtime(work)
    if key is None:
        raise click.ClickException(f"no institution client with id {client_id!r}")
    click.echo(json.dumps({"client_id": client_id, "gateway_key": key}))
