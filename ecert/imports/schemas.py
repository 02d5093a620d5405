"""One row of each import kind (spec §5). Extra columns are ignored; amounts are integer fen."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Area = Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
Fen = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
IdText = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class PersonRow(msgspec.Struct):
    id_number: IdText
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    area: Area
    category: Literal["employee", "retired", "resident"]


class EnrolmentRow(msgspec.Struct):
    id_number: IdText
    insurance_type: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    area: Area
    status: Literal["active", "paused", "terminated"]
    start_date: dt.date
    employer: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    end_date: dt.date | None = None


class ContributionRow(msgspec.Struct):
    id_number: IdText
    month: Annotated[str, msgspec.Meta(pattern=r"^\d{4}(0[1-9]|1[0-2])$")]
    base: Fen
    employer_amount: Fen
    employee_amount: Fen
    account_credit: Fen
    status: Literal["paid", "arrears", "back_paid"]


class InstitutionRow(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]\d{11}$")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["hospital", "pharmacy"]
    level: Literal["community", "1", "2", "3"]
    area: Area
    designated: bool = True


class Reject(msgspec.Struct):
    line: int
    reason: str


class ImportReport(msgspec.Struct):
    kind: str
    accepted: int
    rejected: int
    #: The first rejects (all of them go to the reject file on the command line).
    rejects: list[Reject]
