"""What the counter and staff commands share: who acts, and which person, without argv leaks."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.config import get_settings
from ecert.db.models import Person, StaffRole
from ecert.errors import EcertError, NotFound
from ecert.persons import find_by_ref
from ecert.security import staff as marks
from ecert.security.tokens import Principal
from ecert.server.runtime import Runtime, build_runtime

T = TypeVar("T")
#: The type of :func:`run_with_runtime`, handed to the counter and staff commands at registration.
Runner = Callable[[Callable[[Runtime], Awaitable[Any]]], Any]


def person_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--person-no`` or ``--id-file``; otherwise the ID number is read from stdin or a hidden
    prompt. Never from argv: process lists and shell history would show it."""
    command = click.option(
        "--id-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A file holding the person's ID number (one line).",
    )(command)
    return click.option("--person-no", help="The person's opaque person number instead.")(command)


def batch_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--dry-run`` and ``--batch-size`` of the purges (``ecert purge``, ``ecert audit purge``);
    ``what`` says what one transaction does."""

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--batch-size",
            default=5_000,
            show_default=True,
            type=click.IntRange(1, 100_000),
            help=what,
        )(command)
        return click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")(
            command
        )

    return add


def staff_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--staff",
        "staff_login",
        envvar="ECERT_STAFF",
        help="Your staff login, recorded as the operator in the audit (env ECERT_STAFF).",
    )(command)


def read_id_number(id_file: Path | None) -> str:
    if id_file is not None:
        return id_file.read_text(encoding="utf-8").strip()
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return str(click.prompt("ID number (not shown)", hide_input=True)).strip()


def os_login() -> str:
    """The operator's login name; the uid where the system has no name for it (containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


async def operator(
    session: AsyncSession, staff_login: str | None, roles: frozenset[StaffRole] = marks.COUNTER
) -> Principal:
    """The named member of staff (active, in one of ``roles``), or the system account that runs
    the command (``cli:<os user>``), as the console's routes would admit them."""
    if staff_login is None:
        return Principal(f"cli:{os_login()}"[:64], "agency")
    from ecert.agency.repositories import staff_by_login

    member = await staff_by_login(session, staff_login)
    if member is None or not member.active:
        raise click.ClickException(f"no active member of staff has the login {staff_login!r}")
    if member.role not in roles:
        raise click.ClickException(f"a {member.role} may not do this")
    return Principal(
        marks.PREFIX + member.login, "agency", staff_role=member.role, staff_name=member.name
    )


async def person(
    session: AsyncSession, runtime: Runtime, id_number: str | None, person_no: str | None
) -> Person:
    found = await find_by_ref(session, runtime.cipher, id_number, person_no)
    if found is None:
        raise NotFound("no insured person has this ID number or person number")
    return found


def run(runner: Runner, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work``; a refusal (EcertError) becomes one line and exit status 1."""
    try:
        result: T = runner(work)
    except EcertError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    return result


def run_with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` with a runtime built from the environment, and dispose of it after."""

    async def main() -> T:
        runtime = build_runtime(get_settings())
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())
