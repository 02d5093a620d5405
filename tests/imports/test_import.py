"""Imports: CSV and JSON Lines, per-line rejects, idempotent re-import, credits once, streaming."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import secrets
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from ecert import ledger
from ecert.cli.main import main
from ecert.config import Settings, get_settings
from ecert.db.migrate import upgrade
from ecert.db.models import (
    Account,
    AuditEvent,
    CatalogueEntry,
    Contribution,
    Enrolment,
    Institution,
    LedgerEntry,
    Person,
)
from ecert.imports.readers import rows
from ecert.imports.schemas import Reject
from ecert.imports.services import run_import
from ecert.security.auditchain import derive_key
from ecert.server.runtime import Runtime
from tests.factories import add_client, new_id_number
from tests.fixtures.app import AppFactory
from tests.fixtures.auth import bearer, client_token
from tests.helpers import Client

A, B = new_id_number(), new_id_number("110105", dt.date(1960, 1, 2))
PERSONS_CSV = f"""id_number,name,area,category,extra_column
{A},张三,370102,employee,ignored
{B},李四,110105,retired,
123456,坏行,370102,employee,
{A[:-1]}{"0" if A[-1] != "0" else "1"},校验错,370102,employee,
"""


async def _import(runtime: Runtime, kind: str, text: str, fmt: str) -> tuple[int, list[Reject]]:
    rejects: list[Reject] = []
    accepted = await run_import(
        runtime, kind, rows(text.splitlines(keepends=True), fmt), on_reject=rejects.append
    )
    return accepted, rejects


async def _count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_persons_csv_with_rejects_and_idempotent_reimport(runtime: Runtime) -> None:
    accepted, rejects = await _import(runtime, "persons", PERSONS_CSV, "csv")
    assert accepted == 2
    assert [r.line for r in rejects] == [4, 5]
    assert "18 characters" in rejects[0].reason
    assert "check character" in rejects[1].reason
    assert all(A not in r.reason and A[:-1] not in r.reason for r in rejects)
    again, _ = await _import(runtime, "persons", PERSONS_CSV, "csv")
    assert again == 2
    assert await _count(runtime, Person) == 2


async def test_rejects_never_echo_an_id_number_or_a_name(runtime: Runtime) -> None:
    """A shifted column can put personal data where a value is quoted back: it never is."""
    shifted = f"""id_number,name,area,category
{B},李四,110105,{A}
{B},李四,110105,王五
{B},{A},李四,employee
"""
    accepted, rejects = await _import(runtime, "persons", shifted, "csv")
    assert (accepted, [r.line for r in rejects]) == (0, [2, 3, 4])
    assert "category" in rejects[0].reason
    assert "area" in rejects[2].reason
    for text in (A, B, A[:-1], "李四", "王五"):
        assert all(text not in r.reason for r in rejects), text


async def test_persons_jsonl_lands_like_csv(runtime: Runtime) -> None:
    jsonl = "\n".join(
        json.dumps({"id_number": n, "name": name, "area": area, "category": c, "note": "extra"})
        for n, name, area, c in ((A, "张三", "370102", "employee"), (B, "李四", "110105", "x"))
    )
    accepted, rejects = await _import(runtime, "persons", jsonl, "jsonl")
    assert (accepted, [r.line for r in rejects]) == (1, [2])
    accepted, _ = await _import(runtime, "persons", PERSONS_CSV, "csv")
    assert accepted == 2
    assert await _count(runtime, Person) == 2  # the CSV updated A, added B


async def test_contributions_credit_the_account_once(runtime: Runtime) -> None:
    await _import(runtime, "persons", PERSONS_CSV, "csv")
    lines = [
        {
            "id_number": A,
            "month": "202601",
            "base": 800000,
            "employer_amount": 64000,
            "employee_amount": 16000,
            "account_credit": 16000,
            "status": "paid",
        },
        {
            "id_number": A,
            "month": "202602",
            "base": 800000,
            "employer_amount": 64000,
            "employee_amount": 16000,
            "account_credit": 16000,
            "status": "arrears",
        },
        {
            "id_number": A,
            "month": "2026-03",
            "base": 1,
            "employer_amount": 1,
            "employee_amount": 1,
            "account_credit": 1,
            "status": "paid",
        },
        {
            "id_number": new_id_number(),
            "month": "202601",
            "base": 1,
            "employer_amount": 1,
            "employee_amount": 1,
            "account_credit": 1,
            "status": "paid",
        },
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    accepted, rejects = await _import(runtime, "contributions", text, "jsonl")
    assert accepted == 2
    assert sorted(r.line for r in rejects) == [3, 4, 5]
    assert any("import persons first" in r.reason for r in rejects)
    async with runtime.sessions() as session:
        balance = await session.scalar(select(Account.balance))
    assert balance == 16000  # arrears credit nothing
    await _import(runtime, "contributions", text, "jsonl")  # re-import: no second credit
    back_paid = json.dumps({**lines[1], "status": "back_paid"})
    await _import(runtime, "contributions", back_paid, "jsonl")
    async with runtime.sessions() as session:
        balance = await session.scalar(select(Account.balance))
        credits = await session.scalar(select(func.count()).select_from(LedgerEntry))
    assert balance == 32000
    assert credits == 2
    assert await _count(runtime, Contribution) == 2


async def test_many_people_in_one_batch_each_get_their_own_running_balance(
    runtime: Runtime,
) -> None:
    # One batch credits several people at once (one balance update for all on PostgreSQL):
    # every ledger row must carry its own person's running balance.
    await _import(runtime, "persons", PERSONS_CSV, "csv")
    header = "id_number,month,base,employer_amount,employee_amount,account_credit,status\n"
    body = "".join(
        f"{number},2026{month:02d},800000,64000,16000,{credit * month},paid\n"
        for month in (1, 2, 3)
        for number, credit in ((A, 100), (B, 1000))
    )
    accepted, rejects = await _import(runtime, "contributions", header + body, "csv")
    assert (accepted, rejects) == (6, [])
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(Person.id_hash, LedgerEntry.amount, LedgerEntry.balance_after)
                .join(Account, Account.id == LedgerEntry.account_id)
                .join(Person, Person.id == Account.person_id)
                .order_by(LedgerEntry.id)
            )
        ).all()
    by_person: dict[str, list[tuple[int, int]]] = {}
    for person, amount, after in rows:
        by_person.setdefault(person, []).append((amount, after))
    assert sorted(by_person.values()) == [
        [(100, 100), (200, 300), (300, 600)],
        [(1000, 1000), (2000, 3000), (3000, 6000)],
    ]


async def test_enrolments_institutions_and_policies(runtime: Runtime) -> None:
    await _import(runtime, "persons", PERSONS_CSV, "csv")
    enrolments = f"""id_number,insurance_type,area,status,start_date,employer
{A},310,370102,active,2020-01-01,某公司
{B},390,110105,active,2019-07-01,
{A},310,370102,sleeping,2020-01-01,
"""
    accepted, rejects = await _import(runtime, "enrolments", enrolments, "csv")
    assert (accepted, [r.line for r in rejects]) == (2, [4])
    institutions = """code,name,kind,level,area,designated
H37010200001,第一医院,hospital,3,370102,true
P37010200001,大药房,pharmacy,community,370102,false
X1,坏,hospital,9,1,true
"""
    accepted, rejects = await _import(runtime, "institutions", institutions, "csv")
    assert (accepted, len(rejects)) == (2, 1)
    async with runtime.sessions() as session:
        pharmacy = await session.scalar(select(Institution).where(Institution.code.like("P%")))
    assert pharmacy is not None
    assert pharmacy.designated is False
    policy = json.dumps(
        {
            "area": "370102",
            "insurance_type": "310",
            "year": 2026,
            "category": "employee",
            "outpatient": {"deductible": 1, "cap": 2, "ratios": {"1": 0.5}},
            "inpatient": {"deductible": 1, "cap": 2, "ratios": {"1": 0.5}},
        }
    )
    bad = json.dumps(
        {
            "area": "370102",
            "insurance_type": "310",
            "year": 2026,
            "category": "employee",
            "outpatient": {"deductible": -1},
        }
    )
    accepted, rejects = await _import(runtime, "policies", f"{policy}\n{bad}\n", "jsonl")
    assert (accepted, [r.line for r in rejects]) == (1, [2])
    assert await _count(runtime, Enrolment) == 2


async def test_streaming_lands_batches_before_the_end(runtime: Runtime) -> None:
    """The reader is consumed lazily: a failure after the first batch leaves that batch landed."""
    from ecert.imports import services

    def endless() -> Iterator[str]:
        yield "code,name,kind,level,area\n"
        for i in range(services.BATCH + 5):
            yield f"H{i:011d},医院{i},hospital,1,370102\n"
        raise RuntimeError("the connection to the core system broke")

    with pytest.raises(RuntimeError):
        await run_import(runtime, "institutions", rows(endless(), "csv"), on_reject=print)
    assert await _count(runtime, Institution) == services.BATCH


async def test_agency_api_import(client: Client, runtime: Runtime) -> None:
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    response = await client.post(
        "/v1/agency/imports/persons",
        content=PERSONS_CSV.encode(),
        headers={**agency, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["rejected"]) == (2, 2)
    assert [r["line"] for r in report["rejects"]] == [4, 5]
    assert A not in response.text
    async with runtime.sessions() as session:
        audit = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "import.persons")
        )
    assert audit is not None
    assert audit.detail == {"accepted": 2, "rejected": 2}
    policies_csv = await client.post(
        "/v1/agency/imports/policies",
        content=b"area,year\n370102,2026\n",
        headers={**agency, "Content-Type": "text/csv"},
    )
    assert policies_csv.status_code == 400  # policies are nested: JSON Lines only
    channel = bearer(await client_token(client, *await add_client(runtime, "channel")))
    refused = await client.post("/v1/agency/imports/persons", content=b"", headers=channel)
    assert refused.status_code == 403


async def _audit_rows(url: str) -> list[tuple[str, str, object, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(AuditEvent.action, AuditEvent.outcome, AuditEvent.detail, AuditEvent.actor)
                .where(AuditEvent.action.like("import.%"))
                .order_by(AuditEvent.id)
            )
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


def test_cli_import_writes_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        upgrade(get_settings().effective_database_url)
        source = tmp_path / "persons.csv"
        source.write_text(PERSONS_CSV, encoding="utf-8")
        result = CliRunner().invoke(main, ["import", "persons", str(source)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])
        assert (summary["accepted"], summary["rejected"]) == (2, 2)
        rejects = [json.loads(line) for line in Path(summary["rejects"]).read_text().splitlines()]
        assert [r["line"] for r in rejects] == [4, 5]
        assert A not in Path(summary["rejects"]).read_text()
        again = CliRunner().invoke(main, ["import", "persons", str(source)])
        assert json.loads(again.output.strip().splitlines()[-1])["accepted"] == 2  # no duplicates
        jsonl = tmp_path / "contributions.txt"
        jsonl.write_text(
            json.dumps(
                {
                    "id_number": A,
                    "month": "202601",
                    "base": 1,
                    "employer_amount": 1,
                    "employee_amount": 1,
                    "account_credit": 1,
                    "status": "paid",
                }
            )
            + "\n{\n",
            encoding="utf-8",
        )
        chosen = tmp_path / "out" / "rejects.jsonl"
        chosen.parent.mkdir()
        result = CliRunner().invoke(
            main, ["import", "contributions", str(jsonl), "--rejects", str(chosen)]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.strip().splitlines()[-1])["accepted"] == 1
        assert [json.loads(line) for line in chosen.read_text().splitlines()] == [
            {"line": 2, "reason": "the line is not valid JSON"}
        ]
        audit = asyncio.run(_audit_rows(get_settings().effective_database_url))
        assert [(a, o, d) for a, o, d, _ in audit] == [
            ("import.persons", "ok", {"accepted": 2, "rejected": 2, "file": "persons.csv"}),
            ("import.persons", "ok", {"accepted": 2, "rejected": 2, "file": "persons.csv"}),
            (
                "import.contributions",
                "ok",
                {"accepted": 1, "rejected": 1, "file": "contributions.txt"},
            ),
        ]
        assert all(actor.startswith("cli:") for *_, actor in audit)
    finally:
        get_settings.cache_clear()


#: A CSV cell past the csv module's 128 KiB field limit, and a JSON integer past Python's 4,300
#: digits: each made the reader raise, which aborted the import (a 500 over the API).
HUGE_CELL = "9" * 140_000
HUGE_INT = "9" * 5_000
C = new_id_number("370102", dt.date(1975, 3, 4))
OVERSIZED_CSV = f"""id_number,name,area,category
{A},张三,370102,employee
{C},{HUGE_CELL},370102,employee
{B},李四,110105,retired
"""
OVERSIZED_JSONL = "\n".join(
    [
        json.dumps({"code": "H37010200001", "name": "一院", "kind": "hospital", "level": "3"})[:-1]
        + ', "area": "370102"}',
        '{"code": "H37010200002", "name": "二院", "kind": "hospital", "level": "3", '
        f'"area": "370102", "designated": {HUGE_INT}}}',
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"code": "H37010200003", "name": "三院", "kind": "hospital", "level": "1"})[:-1]
        + ', "area": "370102"}',
    ]
)


def _no_values(rejects: list[Reject] | list[dict[str, object]]) -> None:
    text = repr(rejects)
    assert HUGE_CELL[:50] not in text
    assert HUGE_INT[:50] not in text
    assert C not in text


async def test_finding_13_unparseable_lines_are_rejects_and_the_rest_imports(
    runtime: Runtime,
) -> None:
    accepted, rejects = await _import(runtime, "persons", OVERSIZED_CSV, "csv")
    assert (accepted, [r.line for r in rejects]) == (2, [3])
    _no_values(rejects)
    accepted, rejects = await _import(runtime, "institutions", OVERSIZED_JSONL, "jsonl")
    assert (accepted, [r.line for r in rejects]) == (2, [2, 3])
    _no_values(rejects)
    assert await _count(runtime, Institution) == 2


async def test_finding_13_api_import_rejects_unparseable_lines(
    client: Client, runtime: Runtime
) -> None:
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    for kind, body, fmt, lines in (
        ("persons", OVERSIZED_CSV, "text/csv", [3]),
        ("institutions", OVERSIZED_JSONL, "application/jsonl", [2, 3]),
    ):
        response = await client.post(
            f"/v1/agency/imports/{kind}",
            content=body.encode(),
            headers={**agency, "Content-Type": fmt},
        )
        assert response.status_code == 200, response.text[:500]
        report = response.json()
        assert (report["accepted"], [r["line"] for r in report["rejects"]]) == (2, lines)
        _no_values(report["rejects"])


def test_finding_13_cli_import_goes_on_past_unparseable_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        upgrade(get_settings().effective_database_url)
        for kind, name, text, lines in (
            ("persons", "persons.csv", OVERSIZED_CSV, [3]),
            ("institutions", "institutions.jsonl", OVERSIZED_JSONL, [2, 3]),
        ):
            source = tmp_path / name
            source.write_text(text, encoding="utf-8")
            result = CliRunner().invoke(main, ["import", kind, str(source)])
            assert result.exit_code == 0, result.output[-2000:]
            summary = json.loads(result.output.strip().splitlines()[-1])
            assert (summary["accepted"], summary["rejected"]) == (2, len(lines))
            rejects = [json.loads(x) for x in Path(summary["rejects"]).read_text().splitlines()]
            assert [r["line"] for r in rejects] == lines
            _no_values(rejects)
    finally:
        get_settings.cache_clear()


async def test_finding_13_nul_characters_are_rejects(runtime: Runtime) -> None:
    """PostgreSQL cannot store NUL in text: such a line failed its whole batch (500, CLI abort)."""
    csv_text = (
        "code,name,kind,level,area\n"
        "H37010200001,一院,hospital,3,370102\n"
        "H37010200002,二\x00院,hospital,3,370102\n"
        "H37010200003,三院,hospital,3,370102\n"
    )
    accepted, rejects = await _import(runtime, "institutions", csv_text, "csv")
    assert (accepted, [r.line for r in rejects]) == (2, [3])
    jsonl = "\n".join(
        json.dumps({"code": f"H3701020001{n}", "name": name, "kind": "hospital", "level": "3"})[:-1]
        + ', "area": "370102"}'
        for n, name in enumerate(["四院", "五\x00院", "六院"])
    )
    accepted, rejects = await _import(runtime, "institutions", jsonl, "jsonl")
    assert (accepted, [r.line for r in rejects]) == (2, [2])
    assert all("\x00" not in r.reason for r in rejects)
    assert await _count(runtime, Institution) == 4


CATALOGUE_CSV = """list_code,name,item_class,first_self_pay_ratio,price_cap,valid_from,\
valid_to,gender,min_age,max_age,med_types
XB1,头孢,B,0.1,1000,2020-01-01,,,,,"11,14"
XB1,头孢,B,0.2,,2027-01-01,,,,,
XC1,美容,C,,,2020-01-01,,,,,
XBAD,坏类,D,,,2020-01-01,,,,,
XDATE,坏日期,A,,,2020-01-01,2019-01-01,,,,
XAGE,坏年龄,A,,,2020-01-01,,,10,5,
XMED,坏类型,A,,,2020-01-01,,,,,"11;14"
"""


async def test_catalogue_csv_with_rejects_and_idempotent_reimport(runtime: Runtime) -> None:
    accepted, rejects = await _import(runtime, "catalogue", CATALOGUE_CSV, "csv")
    assert accepted == 3
    assert [r.line for r in rejects] == [5, 6, 7, 8]
    assert "item_class" in rejects[0].reason
    assert "valid_to" in rejects[1].reason
    assert (await _import(runtime, "catalogue", CATALOGUE_CSV, "csv"))[0] == 3
    async with runtime.sessions() as session:
        found = await ledger.catalogue_entries(session, ["XB1", "NOPE"])
    assert found is not None
    assert found["NOPE"] == []
    first, later = sorted(found["XB1"], key=lambda e: e.valid_from)
    assert (first.first_self_pay_ratio, first.price_cap, first.med_types) == (
        0.1,
        1000,
        frozenset({"11", "14"}),
    )
    assert (later.first_self_pay_ratio, later.valid_from) == (0.2, dt.date(2027, 1, 1))
    assert await _count(runtime, CatalogueEntry) == 3


async def test_illustrative_catalogue_loads_whole(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        assert await ledger.catalogue_entries(session, ["XB1"]) is None  # nothing loaded yet
    text = (files("ecert.data") / "catalogue-illustrative.csv").read_text("utf-8")
    accepted, rejects = await _import(runtime, "catalogue", text, "csv")
    assert rejects == []
    assert accepted == len(text.strip().splitlines()) - 1


async def test_agency_api_imports_the_catalogue(client: Client, runtime: Runtime) -> None:
    agency = bearer(await client_token(client, *await add_client(runtime, "agency")))
    good = {"list_code": "XA1", "name": "阿莫西林", "item_class": "A", "valid_from": "2020-01-01"}
    lines = json.dumps(good) + '\n{"list_code": "XA2"}\n'
    response = await client.post(
        "/v1/agency/imports/catalogue",
        content=lines.encode(),
        headers={**agency, "Content-Type": "application/jsonl"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["kind"], report["accepted"], report["rejected"]) == ("catalogue", 1, 1)
    assert report["rejects"][0]["line"] == 2


def test_cli_imports_the_illustrative_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECERT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        upgrade(get_settings().effective_database_url)
        source = tmp_path / "catalogue.csv"
        source.write_text(
            (files("ecert.data") / "catalogue-illustrative.csv").read_text("utf-8")
            + "XBAD,坏行,Z,,,2020-01-01,,,,,\n",
            encoding="utf-8",
        )
        result = CliRunner().invoke(main, ["import", "catalogue", str(source)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output.strip().splitlines()[-1])
        assert (summary["kind"], summary["accepted"], summary["rejected"]) == ("catalogue", 10, 1)
        rejects = [json.loads(line) for line in Path(summary["rejects"]).read_text().splitlines()]
        assert [r["line"] for r in rejects] == [12]
    finally:
        get_settings.cache_clear()


async def test_ops_reimport_during_a_hash_key_rotation_adds_no_second_person(
    make_app: AppFactory, settings: Settings
) -> None:
    runtime = make_app().state.runtime
    await _import(runtime, "persons", PERSONS_CSV, "csv")
    new_hash = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    pinned = base64.urlsafe_b64encode(derive_key(settings, runtime.cipher)).decode()
    rotating = make_app(
        hash_key=f"h0:{settings.hash_key},h1:{new_hash}", hash_active_key="h1", audit_key=pinned
    ).state.runtime
    accepted, _ = await _import(rotating, "persons", PERSONS_CSV, "csv")
    assert accepted == 2
    assert await _count(rotating, Person) == 2
    async with rotating.sessions() as session:
        hashes = set(await session.scalars(select(Person.id_hash)))
    assert hashes == {rotating.cipher.lookup_hash(A), rotating.cipher.lookup_hash(B)}
