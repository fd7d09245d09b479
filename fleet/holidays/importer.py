"""Holiday files: parse an uploaded CSV or XLSX into rows, or report every bad row; templates.

The file has one header row — 日期, 类型, 名称, 备注 (English headings date, kind, name,
note are accepted too) — and one row per day. 类型 is 放假 (a day off) or 调休上班 (an
adjusted working day, a Saturday or Sunday worked). Nothing is stored unless every row is
good: the caller gets the full list of problems, each with its row as the spreadsheet shows
it (the header is row 1), its column heading and a reason in Chinese.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font

from fleet.holidays.calendar import HOLIDAY, WORKDAY, day_problem

MAX_BYTES = 1_048_576
MAX_ROWS = 2_000
COLUMNS = ("日期", "类型", "名称", "备注")
_HEADINGS = {
    "日期": "日期",
    "date": "日期",
    "day": "日期",
    "类型": "类型",
    "kind": "类型",
    "名称": "名称",
    "name": "名称",
    "节日": "名称",
    "备注": "备注",
    "note": "备注",
}
_KINDS = {
    "放假": HOLIDAY,
    "休息": HOLIDAY,
    "节假日": HOLIDAY,
    "holiday": HOLIDAY,
    "调休上班": WORKDAY,
    "上班": WORKDAY,
    "补班": WORKDAY,
    "workday": WORKDAY,
}
KIND_LABELS = {HOLIDAY: "放假", WORKDAY: "调休上班"}


@dataclass(frozen=True)
class FileRow:
    day: date
    kind: str
    name: str
    note: str | None


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


class BadFile(Exception):
    """The file as a whole, or some of its rows, cannot be imported."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problems")
        self.errors = errors


def parse(content: bytes, filename: str = "") -> list[FileRow]:
    """The rows of a CSV or XLSX file (sniffed from its bytes), or BadFile with every problem."""
    if not content:
        raise BadFile([RowError(1, "", "文件为空")])
    if len(content) > MAX_BYTES:
        raise BadFile([RowError(1, "", f"文件过大（上限 {MAX_BYTES // 1024} KB）")])
    if content[:4] == b"PK\x03\x04":
        table = _xlsx_rows(content)
    elif filename.lower().endswith((".xlsx", ".xls")):
        raise BadFile([RowError(1, "", "不是有效的 XLSX 文件（请用模板另存为 .xlsx 或 .csv）")])
    else:
        table = _csv_rows(content)
    return _rows(table)


def _csv_rows(content: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise BadFile([RowError(1, "", "无法识别文件编码（请保存为 UTF-8 或 GBK 的 CSV）")])
    if "\x00" in text:
        raise BadFile([RowError(1, "", "不是文本 CSV 文件")])
    try:
        return list(itertools.islice(csv.reader(io.StringIO(text)), MAX_ROWS + 2))
    except csv.Error as exc:
        raise BadFile([RowError(1, "", f"CSV 格式错误：{exc}")]) from exc


def _xlsx_rows(content: bytes) -> list[list[Any]]:
    try:
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise BadFile([RowError(1, "", "无法读取 XLSX 文件（文件损坏或格式不对）")]) from exc
    try:
        ws = wb.worksheets[0]
        out: list[list[Any]] = []
        for row in ws.iter_rows(values_only=True):
            out.append(list(row))
            if len(out) > MAX_ROWS + 1:
                break
        return out
    finally:
        wb.close()


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _day(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = _text(v).replace("/", "-").replace(".", "-")
    try:
        return date.fromisoformat("-".join(p.zfill(2) for p in s.split("-")))
    except ValueError:
        return None


def _rows(table: list[list[Any]]) -> list[FileRow]:
    # drop fully empty rows at the end (spreadsheets keep formatted blank rows)
    while table and not any(_text(c) for c in table[-1]):
        table.pop()
    if not table:
        raise BadFile([RowError(1, "", "文件为空")])
    header = [_HEADINGS.get(_text(c).lower(), _HEADINGS.get(_text(c), "")) for c in table[0]]
    missing = [c for c in COLUMNS[:3] if c not in header]
    if missing:
        raise BadFile(
            [RowError(1, c, f"缺少列“{c}”（表头应为：{'、'.join(COLUMNS)}）") for c in missing]
        )
    if len(table) - 1 > MAX_ROWS:
        raise BadFile([RowError(MAX_ROWS + 2, "", f"行数过多（上限 {MAX_ROWS} 行）")])
    col = {name: header.index(name) for name in COLUMNS if name in header}
    errors: list[RowError] = []
    rows: list[FileRow] = []
    seen: dict[date, int] = {}
    for n, raw in enumerate(table[1:], start=2):
        cells = {name: (raw[i] if i < len(raw) else None) for name, i in col.items()}
        if not any(_text(v) for v in cells.values()):
            continue  # a blank line in the middle
        bad = len(errors)
        day = _day(cells["日期"])
        if not _text(cells["日期"]) and day is None:
            errors.append(RowError(n, "日期", "日期为空"))
        elif day is None:
            errors.append(
                RowError(n, "日期", f"日期“{_text(cells['日期'])}”无法识别，应为 YYYY-MM-DD")
            )
        elif day in seen:
            errors.append(RowError(n, "日期", f"日期 {day} 与第 {seen[day]} 行重复"))
        kind_text = _text(cells["类型"])
        kind = _KINDS.get(kind_text.lower(), _KINDS.get(kind_text))
        if not kind_text:
            errors.append(RowError(n, "类型", "类型为空（应为“放假”或“调休上班”）"))
        elif kind is None:
            errors.append(RowError(n, "类型", f"类型“{kind_text}”无效，应为“放假”或“调休上班”"))
        name = _text(cells["名称"])
        if not name:
            errors.append(RowError(n, "名称", "名称为空（如 春节、国庆节）"))
        elif len(name) > 40:
            errors.append(RowError(n, "名称", "名称过长（上限 40 字）"))
        note = _text(cells.get("备注")) or None
        if note is not None and len(note) > 200:
            errors.append(RowError(n, "备注", "备注过长（上限 200 字）"))
        if day is not None and kind is not None:
            problem = day_problem(day, kind)
            if problem:
                errors.append(RowError(n, "类型" if kind == WORKDAY else "日期", problem))
        if day is not None and day not in seen:
            seen[day] = n
        if len(errors) == bad and day is not None and kind is not None:
            rows.append(FileRow(day, kind, name, note))
    if errors:
        raise BadFile(errors)
    if not rows:
        raise BadFile([RowError(2, "", "文件没有数据行")])
    return rows


# ---- templates ---------------------------------------------------------------------------

_GUIDE = (
    ("列", "说明"),
    ("日期", "YYYY-MM-DD，例如 2027-02-06；每个日期只出现一次"),
    ("类型", "放假：法定节假日及其连休日；调休上班：需要上班的周六或周日"),
    ("名称", "节日名称，例如 春节、国庆节（不超过 40 字）"),
    ("备注", "可选，例如 国务院办公厅通知文号（不超过 200 字）"),
    ("导入方式", "默认替换文件所含年份的全部记录；也可选择合并（逐日覆盖）"),
    ("注意", "任何一行有误则整个文件不导入，并列出每个错误的行号、列和原因"),
)


def template_csv() -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(COLUMNS)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def template_xlsx() -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "节假日"
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["B"].width = 12
    ws.column_dimensions["C"].width = 16
    ws.column_dimensions["D"].width = 40
    guide = wb.create_sheet("说明")
    for line in _GUIDE:
        guide.append(list(line))
    guide.column_dimensions["A"].width = 12
    guide.column_dimensions["B"].width = 70
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
