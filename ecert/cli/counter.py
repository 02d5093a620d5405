"""``ecert cards report|formal|cancel|replace|errata``, ``ecert ecerts suspend|resume`` and
``ecert audit show``: what the /agency/ console does, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec

from ecert.cli import common
from ecert.security import staff as marks
from ecert.server.runtime import Runtime

# The domains are imported inside each command, as everywhere in ecert/cli/: `ecert --help` and
# the offline `ecert verify` stay quick to start.


def _echo(value: Any) -> None:
    click.echo(msgspec.json.encode(value).decode())


def _card_command(name: str, action: str, example: str) -> click.Command:
    @click.command(name, help=f"{action}\n\n\b\nExample:\n  {example}")
    @common.person_options
    @common.staff_option
    def command(person_no: str | None, id_file: Path | None, staff_login: str | None) -> None:
        number = None if person_no else common.read_id_number(id_file)

        async def work(runtime: Runtime) -> Any:
            from ecert.cards import services as cards

            async with runtime.sessions.begin() as session:
                who = await common.operator(session, staff_login)
                person = await common.person(session, runtime, number, person_no)
                if name == "report":
                    card = await cards.report_provisional(session, runtime, who, person)
                elif name == "formal":
                    card = await cards.report_formal(session, who, person)
                else:
                    card = await cards.cancel_report(session, who, person)
                return await cards.view(session, card)

        _echo(common.run(RUNNER[0], work))

    return command


#: ``run_with_runtime`` of ``ecert.cli.common`` (set by :func:`register`).
RUNNER: list[common.Runner] = []


@click.command("replace")
@click.option("--reason", type=click.Choice(["lost", "damaged"]), required=True)
@common.person_options
@common.staff_option
def cards_replace(
    reason: str, person_no: str | None, id_file: Path | None, staff_login: str | None
) -> None:
    """Replace a formally reported (lost) or a damaged card; prints the new card.

    \b
    Example:
      ecert cards replace --reason damaged --staff wang < id.txt
    """
    number = None if person_no else common.read_id_number(id_file)

    async def work(runtime: Runtime) -> Any:
        from ecert.cards import services as cards

        async with runtime.sessions.begin() as session:
            who = await common.operator(session, staff_login)
            person = await common.person(session, runtime, number, person_no)
            return await cards.view(session, await cards.replace(session, who, person, reason))

    _echo(common.run(RUNNER[0], work))


@click.command("errata")
@click.option("--name", help="The correct name.")
@click.option(
    "--new-id-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the correct ID number (never on the command line).",
)
@common.person_options
@common.staff_option
def cards_errata(
    name: str | None,
    new_id_file: Path | None,
    person_no: str | None,
    id_file: Path | None,
    staff_login: str | None,
) -> None:
    """Correct the name or the ID number (supervisors); both at once issue a new card.

    \b
    Example:
      ecert cards errata --person-no 9BB4E9F34ECE72A6 --new-id-file right-id.txt --staff li
    """
    number = None if person_no else common.read_id_number(id_file)
    new_number = new_id_file.read_text(encoding="utf-8").strip() if new_id_file else None

    async def work(runtime: Runtime) -> Any:
        from ecert.cards import services as cards

        async with runtime.sessions.begin() as session:
            who = await common.operator(session, staff_login, marks.SUPERVISOR)
            person = await common.person(session, runtime, number, person_no)
            card = await cards.errata(
                session, runtime, who, person, name=name, id_number=new_number
            )
            return await cards.view(session, card)

    _echo(common.run(RUNNER[0], work))


@click.group("ecerts")
def ecerts_group() -> None:
    """A person's e-certs, as the agency handles them."""


def _ecert_command(lift: bool) -> click.Command:
    verb = "resume" if lift else "suspend"
    example = (
        "ecert ecerts resume --person-no 9BB4E9F34ECE72A6 --staff wang"
        if lift
        else 'ecert ecerts suspend --reason "电话申请暂停" --staff wang < id.txt'
    )
    what = "Resume the person's e-certs" if lift else "Suspend all of the person's e-certs"

    @click.command(verb, help=f"{what} (prints how many changed).\n\n\b\nExample:\n  {example}")
    @click.option("--reason", default="hotline", show_default=True, help="Why (audited).")
    @common.person_options
    @common.staff_option
    def command(
        reason: str, person_no: str | None, id_file: Path | None, staff_login: str | None
    ) -> None:
        number = None if person_no else common.read_id_number(id_file)

        async def work(runtime: Runtime) -> int:
            from ecert.issuance import suspensions

            async with runtime.sessions.begin() as session:
                who = await common.operator(session, staff_login)
                person = await common.person(session, runtime, number, person_no)
                if lift:
                    return await suspensions.resume(session, who, person.id)
                return await suspensions.suspend(session, who, person.id, reason)

        count = common.run(RUNNER[0], work)
        _echo({"affected": count, "status": "active" if lift else "suspended"})

    return command


@click.command("show")
@common.person_options
@common.staff_option
def audit_show(person_no: str | None, id_file: Path | None, staff_login: str | None) -> None:
    """Print a person's newest audit rows (JSON Lines), each checked against its chain; exit 1
    when any is not intact. The read itself is audited.

    \b
    Example:
      ecert audit show --person-no 9BB4E9F34ECE72A6 --staff li
    """
    number = None if person_no else common.read_id_number(id_file)

    async def work(runtime: Runtime) -> Any:
        from ecert.agency import services as agency

        async with runtime.sessions.begin() as session:
            who = await common.operator(session, staff_login)
            person = await common.person(session, runtime, number, person_no)
            return await agency.trail(session, runtime, who, person.person_no)

    trail = common.run(RUNNER[0], work)
    for row in trail.rows:
        _echo(row)
    if not trail.intact:
        raise SystemExit(1)


def register(main: click.Group, runner: common.Runner) -> None:
    """Add the counter's commands to ``main`` (its ``cards`` and ``audit`` groups exist)."""
    RUNNER[:] = [runner]
    cards_group, audit_group = main.commands["cards"], main.commands["audit"]
    assert isinstance(cards_group, click.Group)
    assert isinstance(audit_group, click.Group)
    for name, action in (
        (
            "report",
            "Hotline: provisional loss report (the card stops at once, restored after N "
            "working days unless a formal report follows).",
        ),
        ("formal", "Formal written loss report: the card is frozen until replaced."),
        ("cancel", "Un-suspend (解挂) a provisional report: the card works again."),
    ):
        cards_group.add_command(
            _card_command(name, action, f"ecert cards {name} --staff wang < id.txt")
        )
    cards_group.add_command(cards_replace)
    cards_group.add_command(cards_errata)
    ecerts_group.add_command(_ecert_command(lift=False))
    ecerts_group.add_command(_ecert_command(lift=True))
    main.add_command(ecerts_group)
    audit_group.add_command(audit_show)
