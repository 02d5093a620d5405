"""``ecert keys list|rotate|revoke``: signing keys."""

from __future__ import annotations

import json

import click

from ecert.cli.common import run_with_runtime
from ecert.server.runtime import Runtime


@click.group("keys")
def keys_group() -> None:
    """Signing keys: list, rotate, revoke."""


@keys_group.command("list")
def keys_list() -> None:
    """Show every signing key with its purpose and state (no private material)."""
    from ecert.security.repositories import signing_keys

    async def work(runtime: Runtime) -> list[dict[str, str | None]]:
        async with runtime.sessions() as session:
            rows = await signing_keys(session)
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
