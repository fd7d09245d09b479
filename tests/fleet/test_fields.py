"""The edge value types (fleet.fields) and the export cell (fleet.tabular), without a database:
what each kind of value accepts, what it refuses and why."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pydantic import Field, ValidationError

from fleet.fields import (
    MONEY,
    TEXT,
    BookedDay,
    Day,
    DriverTime,
    Id,
    Instant,
    Money,
    Month,
    TripTime,
    Whole,
    check_near_trip,
    month_span,
)
from fleet.schemas import Strict
from fleet.tabular import cell, csv_bytes, xlsx_bytes
from fleet.text import clean_text, neutralise_formula

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Body(Strict):
    id: Id | None = None
    count: Whole = 1
    amount: Money = Field(default=Decimal(0), ge=0, le=1000, decimal_places=2)
    fee: Annotated[Decimal, Field(ge=0, le=10, decimal_places=2), MONEY] | None = None
    at: Instant | None = None
    day: Day | None = None
    month: Month | None = None
    departure: TripTime | None = None
    done: DriverTime | None = None
    booked: BookedDay | None = None
    note: Annotated[str, Field(min_length=2, max_length=10), TEXT] | None = None
    flag: bool = False
    lat: float = 0.0


def refused(**data: Any) -> str:
    with pytest.raises(ValidationError) as exc:
        Body.model_validate(data)
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return ".".join(map(str, errors[0]["loc"]))


def test_bodies_take_values_as_the_schema_types_them() -> None:
    # Numbers: 3.0 is a whole number (JSON Schema says so); a string, a boolean is not.
    assert Body.model_validate({"count": 3.0, "id": 7.0}).count == 3
    for bad in ("3", True, 3.5):
        assert refused(count=bad) == "count"
    assert refused(id=2**53) == "id"
    assert refused(lat=True) == "lat" and refused(lat="1.5") == "lat"
    assert refused(lat=float("nan")) == "lat"
    assert refused(flag="yes") == "flag" and refused(flag=1) == "flag"
    # Money: a number within float noise of a fen is that fen; a string at most 2 decimals.
    assert Body.model_validate({"amount": 0.5700000000000001}).amount == Decimal("0.57")
    assert Body.model_validate({"amount": "12.50"}).amount == Decimal("12.50")
    for bad in (4.130665823, "", "1e3", "12.505", True, -1):
        assert refused(amount=bad) == "amount", bad
    assert refused(fee=11) == "fee" and Body.model_validate({"fee": None}).fee is None


def test_dates_and_times_are_rfc_3339_strings_within_1970_2099() -> None:
    ok = Body.model_validate(
        {"at": "2026-12-03T08:30:00.123+08:00", "day": "2028-02-29", "month": "2099-12"}
    )
    assert ok.at == datetime(2026, 12, 3, 0, 30, 0, 123000, tzinfo=UTC)
    for bad in (
        0.5,
        0,
        "0.5",
        "1700000000",
        "2026-12-03T08:30:00",
        "2026-12-03",
        "0001-01-01T00:00:00Z",
        "9999-12-31T20:00:00Z",
        "2100-01-01T00:00:00Z",
    ):
        assert refused(at=bad) == "at", bad
    for bad in (0, "2027-02-29", "1969-12-31", "2100-01-01", "2026-13-01", "20261203"):
        assert refused(day=bad) == "day", bad
    for bad in ("0000-01", "9999-12", "2026-1", "2026-00"):
        assert refused(month=bad) == "month", bad
    assert month_span("2025-11", "2026-02") == 4


def test_times_with_a_meaning_are_held_near_now() -> None:
    now = datetime.now(UTC)
    Body.model_validate({"departure": (now + timedelta(days=170)).isoformat()})
    Body.model_validate({"departure": (now - timedelta(minutes=2)).isoformat()})
    assert refused(departure=(now - timedelta(hours=1)).isoformat()) == "departure"
    assert refused(departure=(now + timedelta(days=200)).isoformat()) == "departure"
    Body.model_validate({"done": (now - timedelta(days=3)).isoformat()})
    assert refused(done=(now + timedelta(hours=1)).isoformat()) == "done"
    assert refused(done="1970-01-01T00:00:00Z") == "done"
    today = now.date()
    Body.model_validate({"booked": (today - timedelta(days=4 * 365)).isoformat()})
    assert refused(booked=(today + timedelta(days=3)).isoformat()) == "booked"
    assert refused(booked="2001-01-01") == "booked"
    # A driver's time within 48 h of the booking; a stored window of year 9999 checks nothing.
    starts = now + timedelta(hours=24)
    assert check_near_trip(now, starts, starts + timedelta(hours=2)) is None
    assert check_near_trip(now - timedelta(days=3), starts, starts + timedelta(hours=2))
    far = datetime(9999, 12, 31, 20, tzinfo=UTC)
    assert check_near_trip(now, far, far + timedelta(hours=2)) is None


def test_text_loses_control_characters_before_its_length_is_checked() -> None:
    assert Body.model_validate({"note": "a\x1ab\r\nc\x00\x85"}).note == "ab\nc"
    assert refused(note="\x01\x02\x1a") == "note"
    assert clean_text("\ud800x\ufffe\t") == "x\t"


def test_export_cells_neutralise_formulas_and_keep_numbers() -> None:
    for text in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise_formula(text) == "'" + text
    assert neutralise_formula("公务 -1") == "公务 -1"
    assert cell(-5, SHANGHAI) == -5 and cell(Decimal("-2.50"), SHANGHAI) == Decimal("-2.50")
    assert cell("-5", SHANGHAI) == "'-5"
    assert cell(float("nan"), SHANGHAI) is None and cell(Decimal("NaN"), SHANGHAI) is None
    assert cell("=1+1\x1a", SHANGHAI) == "'=1+1"
    # Local time when it exists, UTC when the shift would leave the calendar.
    assert cell(datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI) == "2026-01-01T08:00:00+08:00"
    assert cell(datetime(9999, 12, 31, 20, tzinfo=UTC), SHANGHAI) == "9999-12-31T20:00:00+00:00"
    assert cell(datetime.max, SHANGHAI) == "9999-12-31T23:59:59+00:00"
    assert cell(date.min, SHANGHAI) == "0001-01-01"

    columns = [("n", "数 N"), ("t", "文 T")]
    rows = [{"n": -3, "t": "=cmd|' /C calc'!A0"}, {"n": 1.5, "t": "\x07ok"}]
    assert csv_bytes(columns, rows, SHANGHAI).decode("utf-8-sig").splitlines() == [
        "数 N,文 T",
        "-3,'=cmd|' /C calc'!A0",
        "1.5,ok",
    ]
    ws = load_workbook(io.BytesIO(xlsx_bytes(columns, rows, SHANGHAI, title="t"))).active
    assert ws is not None
    assert ws["A2"].value == -3 and ws["A2"].data_type == "n"
    assert ws["B2"].data_type == "s" and ws["B2"].value == "'=cmd|' /C calc'!A0"
    assert ws["B3"].value == "ok"
