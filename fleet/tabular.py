"""Every CSV and XLSX the platform hands out is written here, so every export gets the same
defences: no formula (OWASP CSV injection: a text cell starting with = + - @, tab or CR gets a
leading `'`; numbers stay numbers), no control character, and no stored value — a year-1 or
year-9999 timestamp, an infinite date, a NaN — can make the file fail to render.

CSV is UTF-8 with a BOM so that Excel opens Chinese text; times are written in the display
time zone with their offset.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from fleet.text import clean_text, neutralise_formula

Fmt = Literal["csv", "xlsx"]
Columns = Sequence[tuple[str, str]]
"""(key in the row dict, header label) per column."""

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Cell = str | int | float | Decimal | None


def text_cell(value: str) -> str:
    """A text cell: control characters removed, a leading formula trigger neutralised."""
    return neutralise_formula(clean_text(value))


def _instant(value: datetime, tz: ZoneInfo) -> str:
    if value.tzinfo is None:
        # asyncpg reads PostgreSQL's ±infinity as naive datetime.max/min.
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(tz).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        # Year 1 or 9999 does not survive the shift to local time: show it in UTC instead.
        return value.astimezone(UTC).isoformat(timespec="seconds")


def cell(value: Any, tz: ZoneInfo) -> Cell:
    """One value as a spreadsheet cell: numbers stay numeric, everything else is safe text."""
    if value is None or isinstance(value, int):  # bool is an int: a boolean cell
        return value
    if isinstance(value, datetime):
        return _instant(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, dict):
        text = value.get("address") or ", ".join(f"{k}={v}" for k, v in value.items())
        return text_cell(str(text))
    if isinstance(value, list):
        return text_cell(", ".join(map(str, value)))
    return text_cell(str(value))


def csv_bytes(columns: Columns, rows: Iterable[dict[str, Any]], tz: ZoneInfo) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([text_cell(label) for _, label in columns])
    for r in rows:
        w.writerow(["" if (c := cell(r.get(k), tz)) is None else c for k, _ in columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def xlsx_bytes(
    columns: Columns, rows: Iterable[dict[str, Any]], tz: ZoneInfo, *, title: str
) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = clean_text(title)[:31] or "export"
    ws.append([text_cell(label) for _, label in columns])
    for c in ws[1]:
        c.font = Font(bold=True)
    for r in rows:
        ws.append([cell(r.get(k), tz) for k, _ in columns])
    for i, (_, label) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(12, min(40, len(label) + 4))
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def file_response(
    fmt: Fmt, name: str, columns: Columns, rows: Iterable[dict[str, Any]], tz: ZoneInfo
) -> Response:
    """One downloadable file from rows of dicts."""
    if fmt == "csv":
        body, media = csv_bytes(columns, rows, tz), "text/csv; charset=utf-8"
    else:
        body, media = xlsx_bytes(columns, rows, tz, title=name), XLSX_MEDIA_TYPE
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
