"""The in-process working calendar the rules read: a dict of the `holidays` table.

Rules are sync functions called for every point of a derive cycle, so they never query:
they read :func:`current`, which a worker refreshes with :func:`refresh` (one single-row read
of the change counter the table's trigger bumps in the changing transaction; the whole table,
a few hundred rows a decade, is re-read only when the counter moved). A year with no holiday
rows is *not covered*: its days fall back to Monday–Friday, logged once per process and year,
and the evidence of an alert says so — never silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from fleet.logging import get_logger

log = get_logger("holidays")

HOLIDAY, WORKDAY = "holiday", "workday"
KINDS = (HOLIDAY, WORKDAY)
# 1 November: from then on a missing next year is announced (the State Council publishes the
# coming year's schedule in the autumn).
ANNOUNCE_FROM = (11, 1)


@dataclass(frozen=True)
class WorkCalendar:
    """Holidays and adjusted working days by date; `years` are the covered years."""

    days: Mapping[date, tuple[str, str]] = field(default_factory=dict)  # day -> (kind, name)
    years: frozenset[int] = frozenset()
    version: int = -1  # the table's change counter when loaded; -1: never loaded

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date, str, str]], version: int = 0) -> WorkCalendar:
        days = {d: (k, n) for d, k, n in rows}
        years = frozenset(d.year for d, (k, _) in days.items() if k == HOLIDAY)
        return cls(days=days, years=years, version=version)

    def covers(self, year: int) -> bool:
        return year in self.years

    def is_workday(self, day: date) -> bool:
        """Working day: a weekday that is no public holiday, or an adjusted (调休) weekend
        day. In a year not covered: Monday–Friday, and a warning (once per year)."""
        entry = self.days.get(day)
        if entry is not None:
            return entry[0] == WORKDAY
        if day.year not in self.years:
            _warn_uncovered(day.year)
        return day.weekday() < 5

    def holiday_name(self, day: date) -> str | None:
        entry = self.days.get(day)
        return entry[1] if entry is not None and entry[0] == HOLIDAY else None

    def describe(self, year: int) -> str:
        """For an alert's evidence: which calendar decided."""
        if year in self.years:
            return f"holidays table v{self.version}"
        return f"holidays table v{self.version}: {year} not covered, Monday-Friday assumed"

    def missing_years(self, today: date) -> list[int]:
        """Years that should be covered by now and are not: this year, and from 1 November
        the next one."""
        out = [] if self.covers(today.year) else [today.year]
        if (today.month, today.day) >= ANNOUNCE_FROM and not self.covers(today.year + 1):
            out.append(today.year + 1)
        return out


_current = WorkCalendar()
_warned: set[int] = set()


def _warn_uncovered(year: int) -> None:
    if year not in _warned:
        _warned.add(year)
        log.warning(
            "holidays.year_not_covered",
            year=year,
            assumed="Monday-Friday working days",
            fix="add the year on the holidays page or import its file",
        )


def current() -> WorkCalendar:
    return _current


def install(cal: WorkCalendar) -> WorkCalendar:
    """Make `cal` the process's calendar (tests may install one of their own)."""
    global _current
    _current = cal
    _warned.clear()
    return cal


_VERSION_SQL = "SELECT version FROM holidays_version"
_ROWS_SQL = "SELECT day, kind, name FROM holidays ORDER BY day"


async def load(conn: asyncpg.Connection) -> WorkCalendar:
    """Read the whole table (and its change counter) into a calendar and install it."""
    version = int(await conn.fetchval(_VERSION_SQL))
    rows = await conn.fetch(_ROWS_SQL)
    cal = WorkCalendar.from_rows(((r["day"], r["kind"], r["name"]) for r in rows), version)
    log.info("holidays.loaded", version=version, days=len(rows), years=_span(cal.years))
    return install(cal)


async def refresh(conn: asyncpg.Connection) -> WorkCalendar:
    """Reload when the table changed since the last load (one single-row read otherwise)."""
    version = int(await conn.fetchval(_VERSION_SQL))
    if version != _current.version:
        return await load(conn)
    return _current


def warn_missing(cal: WorkCalendar, today: date, process: str) -> list[int]:
    """The start-up check of `fleet serve` and the workers: a warning naming the missing
    years (this year, or from 1 November the next). Returns them."""
    missing = cal.missing_years(today)
    if missing:
        log.warning(
            "holidays.coverage_missing",
            process=process,
            missing_years=missing,
            covered=_span(cal.years),
            effect="days of these years count as Monday-Friday working days",
            fix="add the years on the holidays page (节假日管理) or import their file",
        )
    return missing


def _span(years: frozenset[int]) -> str:
    return f"{min(years)}-{max(years)}" if years else "none"


def day_problem(day: date, kind: str) -> str | None:
    """Why a (day, kind) pair cannot be stored, in Chinese (shown to admins), or None."""
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        return "日期须在 2000-01-01 至 2100-12-31 之间"
    if kind == WORKDAY and day.weekday() < 5:
        return "调休上班日须为周六或周日（工作日本来就上班）"
    return None
