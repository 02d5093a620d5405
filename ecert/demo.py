"""Demo data for the embedded default: people with valid generated ID numbers, institutions,
clients, and a guide of what to try. Deterministic from a seed, so a person's ID number can be
re-derived instead of being written to disk.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.agency import staff as staff_accounts
from ecert.cards import services as cards
from ecert.clock import business_date
from ecert.data import illustrative_catalogue, illustrative_policies
from ecert.db.models import Card, Client, Person, Staff, StaffRole
from ecert.identity import make_id_number
from ecert.imports.readers import Row
from ecert.imports.schemas import Reject
from ecert.imports.services import run_import
from ecert.oauth.services import register_client
from ecert.server.runtime import Runtime

SEED = 20261122
#: The demo channel's display name: the demo sign-in acts as this client.
DEMO_CHANNEL = "Demo channel app"
AREAS = ("370102", "110105", "310115")
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芬燕彬斌宇浩凯"
    "健俊帆帅旭宁龙林欢阳建华亮成佳"
)


def demo_person(index: int) -> dict[str, Any]:
    """The index-th demo person (same every run)."""
    rng = random.Random(SEED * 1000 + index)  # noqa: S311 - reproducible demo data, not secrets
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 80))
    area = AREAS[index % len(AREAS)]
    age = (dt.date.today() - birth).days // 365
    category = "retired" if age >= 60 else rng.choice(["employee", "employee", "resident"])
    if index == 0:  # the guide's person: an employee with a personal account
        birth, category = dt.date(1985, 6, 15), "employee"
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))
    return {
        "index": index,
        "id_number": make_id_number(area, birth, rng.randrange(0, 1000)),
        "name": name,
        "area": area,
        "category": category,
    }


def _months(count: int) -> list[str]:
    """The ``count`` months before this one, oldest first, as YYYYMM."""
    first = business_date().replace(day=1)
    months = []
    for back in range(count, 0, -1):
        year, month = divmod(first.year * 12 + first.month - 1 - back, 12)
        months.append(f"{year}{month + 1:02d}")
    return months


def demo_rows(people: int) -> dict[str, list[dict[str, Any]]]:
    """What the core system would export for the demo people, in the import format."""
    rows: dict[str, list[dict[str, Any]]] = {
        "institutions": [],
        "persons": [],
        "enrolments": [],
        "contributions": [],
    }
    for area in AREAS:
        for n, level in enumerate(("community", "1", "2", "3"), start=1):
            rows["institutions"].append(
                {
                    "code": f"H{area}{n + 10:05d}",
                    "name": f"示例{area}第{n}医院（{level}级）",
                    "kind": "hospital",
                    "level": level,
                    "area": area,
                    "designated": True,
                }
            )
        rows["institutions"].append(
            {
                "code": f"P{area}{11:05d}",
                "name": f"示例{area}大药房",
                "kind": "pharmacy",
                "level": "community",
                "area": area,
                "designated": True,
            }
        )
    months = _months(24)
    for index in range(people):
        data = demo_person(index)
        rng = random.Random(SEED - index)  # noqa: S311 - reproducible demo data
        rows["persons"].append({k: data[k] for k in ("id_number", "name", "area", "category")})
        basic = "390" if data["category"] == "resident" else "310"
        rows["enrolments"].append(
            {
                "id_number": data["id_number"],
                "insurance_type": basic,
                "area": data["area"],
                "status": "active",
                "start_date": "2015-01-01",
                "employer": None if basic == "390" else "示例科技有限公司",
            }
        )
        if basic == "390":
            continue  # resident insurance: yearly premium, no personal account
        wage = rng.randrange(500_000, 2_500_000, 100)
        arrears = rng.randrange(len(months)) if index % 7 == 3 else -1
        for n, month in enumerate(months):
            retired = data["category"] == "retired"
            rows["contributions"].append(
                {
                    "id_number": data["id_number"],
                    "month": month,
                    "base": 0 if retired else wage,
                    "employer_amount": 0 if retired else wage * 8 // 100,
                    "employee_amount": 0 if retired else wage * 2 // 100,
                    "account_credit": 12_000 if retired else wage * 2 // 100,
                    "status": "arrears" if n == arrears else "paid",
                }
            )
    return rows


async def seed_demo(runtime: Runtime, *, people: int) -> dict[str, Any]:
    """Import demo people, enrolments, 24 months of contributions (which credit the accounts),
    policies and the illustrative catalogue; issue cards; register demo clients once. Re-running changes nothing."""
    rows = demo_rows(people)
    rows["policies"] = illustrative_policies(business_date().year)
    rows["catalogue"] = illustrative_catalogue()

    def refuse(reject: Reject) -> None:
        raise RuntimeError(f"demo data rejected at line {reject.line}: {reject.reason}")

    with Progress(transient=True) as progress:
        kinds = ("institutions", "persons", "enrolments", "contributions", "policies", "catalogue")
        for kind in kinds:
            task = progress.add_task(f"Seeding {kind}", total=len(rows[kind]))

            def numbered(items: list[dict[str, Any]], task: Any = task) -> Iterator[Row]:
                for line, item in enumerate(items, start=1):
                    progress.advance(task)
                    yield line, item

            await run_import(runtime, kind, numbered(rows[kind]), on_reject=refuse)
    async with runtime.sessions.begin() as session:
        without_card = (
            await session.scalars(select(Person).where(~Person.id.in_(select(Card.person_id))))
        ).all()
        for person in without_card:
            await cards.issue(session, person, "demo")
        registered = (await session.scalars(select(Client).where(Client.name.like("Demo %")))).all()
        if registered:
            # A demo made before staff accounts existed gets them now (docs/agency.md).
            has_staff = await session.scalar(select(Staff.id).limit(1)) is not None
            staff = None if has_staff else await _demo_staff(session, runtime)
            return {"seed": SEED, "people": people, "clients": None, "staff": staff}
        clients: dict[str, dict[str, str | None]] = {}
        specs: list[dict[str, Any]] = [
            {"key": "channel", "kind": "channel", "name": DEMO_CHANNEL},
            {
                "key": "hospital",
                "kind": "institution",
                "name": "Demo 济南市第一人民医院",
                "code": "H37010200001",
                "level": "3",
                "area": "370102",
            },
            {
                "key": "pharmacy",
                "kind": "institution",
                "name": "Demo 历下大药房",
                "code": "P37010200001",
                "level": "community",
                "area": "370102",
            },
            {"key": "agency", "kind": "agency", "name": "Demo agency desk"},
        ]
        for spec in specs:
            key = spec.pop("key")
            client, secret = await register_client(session, cipher=runtime.cipher, **spec)
            clients[key] = {"client_id": client.client_id, "client_secret": secret}
        staff = await _demo_staff(session, runtime)
    return {"seed": SEED, "people": people, "clients": clients, "staff": staff}


async def _demo_staff(session: AsyncSession, runtime: Runtime) -> dict[str, dict[str, str]]:
    """One member of staff per role for the /agency/ console, with random passwords."""
    made: dict[str, dict[str, str]] = {}
    for role, name in (
        (StaffRole.CLERK, "演示柜员"),
        (StaffRole.SUPERVISOR, "演示主管"),
        (StaffRole.OPERATOR, "演示运维"),
    ):
        login, password = f"demo-{role.value}", secrets.token_urlsafe(12)
        await staff_accounts.add(session, runtime, login, name, role, password, totp=False)
        made[role.value] = {"login": login, "password": password}
    return made


def make_assertion(credentials: dict[str, Any], index: int, issuer_url: str) -> str:
    """A person assertion as a channel would sign it after a face check (HS256 with its secret)."""
    channel = credentials["clients"]["channel"]
    person = demo_person(index)
    now = int(time.time())
    claims = {
        "iss": channel["client_id"],
        "sub": person["id_number"],
        "name": person["name"],
        "amr": ["face"],
        "aud": issuer_url,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, channel["client_secret"], algorithm="HS256")


def print_guide(credentials: dict[str, Any], base: str, path: Path) -> None:
    console = Console()
    clients = credentials.get("clients")
    if not clients:
        console.print(f"[bold]Demo data is up to date.[/] Credentials from the first run: {path}")
        return
    hospital, channel = clients["hospital"], clients["channel"]
    field_of = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"
    json_header = "-H 'Content-Type: application/json'"
    console.print(f"[bold green]Demo ready[/]: {credentials['people']} people. Credentials: {path}")
    console.print(
        f"""
API reference (browse it): {base}/schema      Health: {base}/healthz   Metrics: {base}/metrics
Insured person's page: {base}/app/    Clinic scanner page: {base}/scanner/
  (sign the scanner in with the hospital's client id and secret shown below)
Agency counter: {base}/agency/  (staff logins and passwords: "staff" in {path})

Try the whole flow from a second terminal (in this folder):
  BASE={base}
  # 1. The channel app signs in demo person 0 (it asserts a face check) and activates the e-cert
  PERSON=$(curl -s -u {channel["client_id"]}:{channel["client_secret"]} \\
    -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \\
    -d assertion=$(.venv/bin/ecert demo-assertion --person 0) $BASE/oauth/token | {field_of} access_token)
  curl -s {json_header} -H "Authorization: Bearer $PERSON" \\
    -d '{{"device_id":"demo-phone","device_name":"Demo phone"}}' $BASE/v1/me/ecert
  # 2. The phone shows a rotating QR code
  QR=$(curl -s -X POST -H "Authorization: Bearer $PERSON" $BASE/v1/me/ecert/qr | {field_of} qr)
  # 3. The hospital verifies it and gets a settlement token
  HOSP=$(curl -s -u {hospital["client_id"]}:{hospital["client_secret"]} \\
    -d grant_type=client_credentials $BASE/oauth/token | {field_of} access_token)
  EC=$(curl -s {json_header} -H "Authorization: Bearer $HOSP" -d "{{\\"qr\\":\\"$QR\\"}}" \\
    $BASE/v1/verify | {field_of} ec_token)
  # 4. …and settles a bill, paying the personal part from the account
  curl -s {json_header} -H "Authorization: Bearer $HOSP" -H "Idempotency-Key: demo-$RANDOM" \\
    -d "{{\\"ec_token\\":\\"$EC\\",\\"med_type\\":\\"11\\",\\"use_account\\":true,\\"items\\":[{{\\"code\\":\\"A1\\",\\"name\\":\\"检查\\",\\"item_class\\":\\"A\\",\\"amount\\":12000}}]}}" \\
    $BASE/v1/settlements
  # Hospitals may work in visits instead (docs/settlement.md, Visits): POST $BASE/v1/visits
  # with a fresh ec_token, then …/fees with lines from ecert/data/catalogue-illustrative.csv,
  # …/settlements/preview and …/settlements.
""",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
