"""``ecert staff add|disable|enable|reset``: the named operators of the /agency/ console."""

from __future__ import annotations

import sys

import click

from ecert.cli import common
from ecert.db.models import StaffRole
from ecert.server.runtime import Runtime

#: ``run_with_runtime`` of ``ecert.cli.common`` (set by :func:`register`).
RUNNER: list[common.Runner] = []


def _password() -> str:
    """From stdin when piped, else a hidden prompt typed twice: never from argv."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group("staff")
def staff_group() -> None:
    """Staff accounts for the agency console (/agency/) and the counter commands."""


@staff_group.command("add")
@click.argument("login")
@click.option("--name", required=True, help="The name shown and audited (opter_name).")
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.option("--totp", is_flag=True, help="Require an authenticator code; prints its URI once.")
def staff_add(login: str, name: str, role: str, totp: bool) -> None:
    """Add a member of staff; the password is read from stdin or a hidden prompt.

    \b
    Example:
      ecert staff add wang --name 王柜员 --role clerk --totp
    """
    password = _password()
    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="password")

    async def work(runtime: Runtime) -> str | None:
        from ecert.agency import staff as accounts

        async with runtime.sessions.begin() as session:
            return await accounts.add(
                session, runtime, login, name, StaffRole(role), password, totp=totp
            )

    uri = common.run(RUNNER[0], work)
    click.echo(f"added {login} ({role})")
    if uri:
        click.echo(f"scan into the authenticator app (shown once): {uri}")


def _toggle(active: bool) -> click.Command:
    verb = "enable" if active else "disable"

    @click.command(
        verb,
        help=f"{verb.capitalize()} a member of staff (a disabled one's session ends within "
        f"seconds).\n\n\b\nExample:\n  ecert staff {verb} wang",
    )
    @click.argument("login")
    def command(login: str) -> None:
        async def work(runtime: Runtime) -> None:
            from ecert.agency import staff as accounts

            async with runtime.sessions.begin() as session:
                await accounts.set_active(session, login, active)

        common.run(RUNNER[0], work)
        click.echo(f"{verb}d {login}")

    return command


@staff_group.command("reset")
@click.argument("login")
def staff_reset(login: str) -> None:
    """Set a new password (stdin or hidden prompt) and lift a lockout.

    \b
    Example:
      ecert staff reset wang
    """
    password = _password()
    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="password")

    async def work(runtime: Runtime) -> None:
        from ecert.agency import staff as accounts

        async with runtime.sessions.begin() as session:
            await accounts.reset(session, login, password)

    common.run(RUNNER[0], work)
    click.echo(f"reset {login}")


def register(main: click.Group, runner: common.Runner) -> None:
    RUNNER[:] = [runner]
    staff_group.add_command(_toggle(active=False))
    staff_group.add_command(_toggle(active=True))
    main.add_command(staff_group)
