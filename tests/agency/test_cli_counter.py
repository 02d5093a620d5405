"""CLI parity with the console: staff accounts, card actions, e-cert suspension, the audit trail;
the ID number comes from stdin or a file, never from argv."""

from __future__ import annotations

import json
from pathlib import Path

from ecert.config import Settings
from ecert.db.models import Person
from ecert.server.runtime import Runtime
from tests.factories import add_client, holder
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client, run_cli


async def test_counter_commands(
    client: Client, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    person = await holder(client, runtime, name="钱十一")
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    issued = await client.post(
        "/v1/agency/cards/issue", json={"id_number": person.id_number}, headers=agency
    )
    assert issued.status_code == 201, issued.text
    async with runtime.sessions() as session:
        found = await session.get(Person, person.person_id)
        assert found is not None
        person_no = found.person_no

    added = await run_cli(
        settings,
        "staff",
        "add",
        "wang",
        "--name",
        "王柜员",
        "--role",
        "clerk",
        stdin="pw-123456789\n",
    )
    assert "added wang" in added
    reported = json.loads(
        await run_cli(settings, "cards", "report", "--staff", "wang", stdin=person.id_number + "\n")
    )
    assert reported["status"] == "provisionally_reported"
    cancelled = json.loads(
        await run_cli(settings, "cards", "cancel", "--person-no", person_no, "--staff", "wang")
    )
    assert cancelled["status"] == "active"
    id_file = tmp_path / "id.txt"
    id_file.write_text(person.id_number)
    suspended = json.loads(
        await run_cli(
            settings, "ecerts", "suspend", "--id-file", str(id_file), "--reason", "手机丢失"
        )
    )
    assert suspended == {"affected": 1, "status": "suspended"}
    # A clerk may not correct a name: errata is a supervisor's.
    refused = await run_cli(
        settings,
        "cards",
        "errata",
        "--person-no",
        person_no,
        "--name",
        "钱十二",
        "--staff",
        "wang",
        ok=False,
    )
    assert "may not" in refused

    rows = [
        json.loads(line)
        for line in (
            await run_cli(settings, "audit", "show", "--person-no", person_no)
        ).splitlines()
    ]
    assert all(row["intact"] for row in rows)
    report = next(row for row in rows if row["action"] == "card.report")
    assert report["actor"] == "staff:wang"
    assert report["opter_name"] == "王柜员"

    assert "disabled wang" in await run_cli(settings, "staff", "disable", "wang")
    await run_cli(
        settings, "cards", "report", "--person-no", person_no, "--staff", "wang", ok=False
    )


def test_every_counter_command_shows_an_example() -> None:
    from click.testing import CliRunner

    from ecert.cli.main import main

    for args in (
        ["cards", "report"],
        ["cards", "formal"],
        ["cards", "cancel"],
        ["cards", "replace"],
        ["cards", "errata"],
        ["ecerts", "suspend"],
        ["ecerts", "resume"],
        ["audit", "show"],
        ["staff", "add"],
        ["staff", "disable"],
        ["staff", "reset"],
    ):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Example:" in result.output, args
