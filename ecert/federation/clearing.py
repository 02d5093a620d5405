"""The treating province's clearing record, and the month's report both provinces agree on.

The treating province records a routed settlement or reversal only once the insured province
replied with it (a reply that never arrived records nothing; the hospital's retry with the same
Idempotency-Key gets the same settlement back, and then it is recorded, once). The insured
province needs no record of its own: its settlements at other provinces' institutions are it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ecert.clock import business_date
from ecert.errors import ValidationFailed
from ecert.federation import repositories
from ecert.federation.client import ProvinceClient
from ecert.federation.exceptions import ProvinceUnavailable
from ecert.federation.schemas import (
    ClearingEntry,
    ClearingFigures,
    ClearingPeer,
    ClearingReport,
    ClearingSync,
)

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_POOLS = ("total", "fund_paid", "account_paid", "account_mutual_aid_paid", "cash_paid")


#: Where a reply carries, for each kind: its own id, the settlement's id, then the five pools.
_REPLY_KEYS = {
    "settlement": (
        "settlement_id",
        "settlement_id",
        "total",
        "fund_paid",
        "account_paid",
        "account_mutual_aid_paid",
        "cash_paid",
    ),
    "reversal": (
        "reversal_id",
        "settlement_id",
        "amount",
        "fund_refund",
        "account_refund",
        "account_mutual_aid_refund",
        "cash_refund",
    ),
}
_COLUMNS = ("total", "fund_paid", "account_paid", "mutual_aid_paid", "cash_paid")


async def record(
    session: AsyncSession, kind: str, province: str, institution_code: str, reply: dict[str, Any]
) -> None:
    """Record a settlement or reversal the insured province replied with (refunds positive)."""
    remote, settlement, *pools = (reply.get(key, 0) for key in _REPLY_KEYS[kind])
    await repositories.add_clearing(
        session,
        {
            "kind": kind,
            "province": province,
            "remote_id": uuid.UUID(str(remote)),
            "settlement_id": uuid.UUID(str(settlement)),
            "institution_code": institution_code,
            "business_date": business_date(),
            **dict(zip(_COLUMNS, (int(p) for p in pools), strict=True)),
        },
    )


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    found = MONTH.match(month)
    if not found:
        raise ValidationFailed("month is YYYY-MM")
    year, number = int(found[1]), int(found[2])
    first = dt.date(year, number, 1)
    return first, dt.date(year + number // 12, number % 12 + 1, 1)


class _Tally:
    def __init__(self) -> None:
        self.counts = [0, 0]
        self.sums = dict.fromkeys(_POOLS, 0)

    def add(self, count: int, sums: Iterable[int], sign: int) -> None:
        self.counts[0 if sign > 0 else 1] += count
        for pool, value in zip(_POOLS, sums, strict=True):
            self.sums[pool] += sign * int(value)

    def figures(self) -> ClearingFigures:
        s = self.sums
        owed = s["fund_paid"] + s["account_paid"] + s["account_mutual_aid_paid"]
        return ClearingFigures(
            settlements=self.counts[0], reversals=self.counts[1], **s, amount=owed
        )


async def report(
    session: AsyncSession, own_area: str, peers: Iterable[str], month: str
) -> ClearingReport:
    """Both directions of every province pair for the month (business days, Asia/Shanghai)."""
    first, after = month_bounds(month)
    own = own_area[:2]
    by_prefix = {area[:2]: area for area in peers}
    owed: dict[str, _Tally] = {}
    owe: dict[str, _Tally] = {}

    def peer(prefix: str) -> str:
        return by_prefix.setdefault(prefix, prefix + "0000")

    for province, kind, count, *sums in await repositories.treated(session, first, after):
        tally = owed.setdefault(peer(province[:2]), _Tally())
        tally.add(count, sums, 1 if kind == "settlement" else -1)
    for prefix, count, *sums in await repositories.insured_settlements(session, own, first, after):
        owe.setdefault(peer(prefix), _Tally()).add(count, sums, 1)
    for prefix, count, *sums in await repositories.insured_reversals(session, own, first, after):
        owe.setdefault(peer(prefix), _Tally()).add(count, sums, -1)
    lines = []
    for area in sorted(set(by_prefix.values())):
        mine, theirs = owed.get(area, _Tally()).figures(), owe.get(area, _Tally()).figures()
        lines.append(
            ClearingPeer(
                province=area, owed_to_us=mine, we_owe=theirs, net=mine.amount - theirs.amount
            )
        )
    return ClearingReport(month=month, province=own_area, peers=lines)


async def entries(session: AsyncSession, province: str, month: str) -> list[ClearingEntry]:
    """What we (the insured province) settled and reversed this month at ``province``'s
    institutions, one entry each."""
    first, after = month_bounds(month)
    rows = await repositories.routed_entries(session, province, first, after)
    return [msgspec.convert(row, ClearingEntry) for row in rows]


async def sync(session: AsyncSession, peers: Iterable[ProvinceClient], month: str) -> ClearingSync:
    """Add the records whose reply never arrived (and whose hospital never retried): each
    insured province lists what it settled for our hospitals; what we lack is recorded with its
    business date. Safe to run again: records are unique by their remote id."""
    month_bounds(month)  # refuse a malformed month before asking anyone
    added = 0
    for peer in peers:
        reply = await peer.call(
            "GET", f"/v1/federation/clearing?month={month}", body=None, on_behalf=None
        )
        if reply.status != 200:
            raise ProvinceUnavailable(f"province {peer.area} did not list its clearing")
        for entry in msgspec.json.decode(reply.body, type=list[ClearingEntry]):
            values = msgspec.to_builtins(entry, builtin_types=(uuid.UUID, dt.date))
            values["mutual_aid_paid"] = values.pop("account_mutual_aid_paid")
            added += await repositories.add_clearing(session, {**values, "province": peer.area})
    return ClearingSync(month=month, added=added)
