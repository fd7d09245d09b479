"""Edges of the holidays API: a day in, a day out, coverage by year, import reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from fleet.fields import TEXT, Day, Text
from fleet.schemas import Out, Strict

Kind = Literal["holiday", "workday"]


class HolidayBody(Strict):
    """What an admin sets for a day: day off (holiday) or adjusted working day (workday)."""

    kind: Kind
    name: Text = Field(min_length=1, max_length=40, description="e.g. 春节, 国庆节")
    note: Annotated[str, Field(max_length=200), TEXT] | None = None


class HolidayIn(HolidayBody):
    day: Day = Field(ge=date(2000, 1, 1), description="YYYY-MM-DD, 2000–2099")


class HolidayOut(Out):
    day: date
    kind: Kind
    name: str
    note: str | None
    source: str
    updated_at: datetime
    updated_by: int | None


class YearCoverage(Out):
    year: int
    holidays: int
    workdays: int


class Coverage(Out):
    """Covered years (at least one holiday row), and what is missing as of today (Shanghai)."""

    today: date
    years: list[YearCoverage]
    missing_years: list[int]


class ImportRowError(Out):
    row: int = Field(description="row number as the spreadsheet shows it (header is row 1)")
    column: str = Field(description="column heading, e.g. 日期")
    reason: str = Field(description="what is wrong, in Chinese")


class ImportReport(Out):
    imported: int
    years: list[int]
    replaced: int = Field(description="rows of those years removed before the import")
    mode: Literal["replace", "merge"]
