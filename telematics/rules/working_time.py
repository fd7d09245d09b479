"""Working time for the rules: official working days and the working hours of the settings.

Working days come from the official calendar (``fleet.holidays``: the `holidays` table, held
in process and refreshed by the derive cycle).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from fleet.holidays import calendar
from telematics.rules.thresholds import DeriveSettings


def is_workday(day: date) -> bool:
    """Official working day: weekdays that are not public holidays, plus adjusted (调休)
    weekend working days, from the holidays table. A year the table does not cover counts
    Monday–Friday, with a warning (see fleet.holidays.calendar)."""
    return calendar.current().is_workday(day)


def holiday_name(day: date) -> str | None:
    return calendar.current().holiday_name(day)


def off_hours(ts: datetime, cfg: DeriveSettings) -> tuple[bool, str]:
    """(True, reason) when ts falls outside working time: non-working day or hours."""
    local = ts.astimezone(ZoneInfo(cfg.timezone))
    day = local.date()
    if not is_workday(day):
        name = holiday_name(day)
        return True, f"holiday:{name}" if name else "weekend"
    t = local.time()
    if t < cfg.work_start or t >= cfg.work_end:
        return True, "after_hours"
    return False, ""


def in_working_hours(ts: datetime, cfg: DeriveSettings) -> bool:
    return not off_hours(ts, cfg)[0]
