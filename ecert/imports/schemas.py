"""One row of each import kind (docs/import.md). Extra columns ignored; amounts in integer fen."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Area = Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
Fen = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
IdText = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class PersonRow(msgspec.Struct, kw_only=True):
    id_number: IdText
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    area: Area
    category: Literal["employee", "retired", "resident"]


class EnrolmentRow(msgspec.Struct, kw_only=True):
    id_number: IdText
    insurance_type: Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
    area: Area
    status: Literal["active", "paused", "terminated"]
    start_date: dt.date
    employer: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    end_date: dt.date | None = None


class ContributionRow(msgspec.Struct, kw_only=True):
    id_number: IdText
    month: Annotated[str, msgspec.Meta(pattern=r"^\d{4}(0[1-9]|1[0-2])$")]
    base: Fen
    employer_amount: Fen
    employee_amount: Fen
    account_credit: Fen
    status: Literal["paid", "arrears", "back_paid"]


class InstitutionRow(msgspec.Struct, kw_only=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]\d{11}$")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["hospital", "pharmacy"]
    level: Literal["community", "1", "2", "3"]
    area: Area
    designated: bool = True


class CatalogueRow(msgspec.Struct, kw_only=True):
    """A catalogue entry (docs/import.md): ``price_cap`` fen a unit, ``med_types`` ``11,14``."""

    list_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    item_class: Literal["A", "B", "C"]
    valid_from: dt.date
    first_self_pay_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    price_cap: Fen | None = None
    valid_to: dt.date | None = None
    gender: Literal["M", "F"] | None = None
    min_age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None
    max_age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None
    med_types: Annotated[str, msgspec.Meta(pattern=r"^\d{2}(,\d{2})*$")] | None = None

    def __post_init__(self) -> None:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("max_age is below min_age")


class Reject(msgspec.Struct, kw_only=True):
    line: int
    reason: str


class ImportReport(msgspec.Struct, kw_only=True):
    kind: str
    accepted: int
    rejected: int
    #: The first rejects (all of them go to the reject file on the command line).
    rejects: list[Reject]
