"""Rows for the `holidays` table from the `chinese-calendar` package (the seed, and a sync
for years a newer package version adds). Pure: no database."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import chinese_calendar

# The package names its festivals in English; the table (shown to Chinese users) in Chinese.
ZH_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}


class PackageDay(NamedTuple):
    day: date
    kind: str  # "holiday" (day off) or "workday" (调休: a weekend day worked)
    name: str


def package_version() -> str:
    return str(chinese_calendar.__version__)


def package_rows(years: set[int] | None = None) -> list[PackageDay]:
    """Every holiday and adjusted working day the package knows, optionally of some years."""
    out: list[PackageDay] = []
    for kind, table in (
        ("holiday", chinese_calendar.holidays),
        ("workday", chinese_calendar.workdays),
    ):
        for day, name in table.items():
            if years is not None and day.year not in years:
                continue
            text = str(getattr(name, "value", name) or "")
            out.append(PackageDay(day, kind, ZH_NAMES.get(text, text or "节假日")))
    return sorted(out)
