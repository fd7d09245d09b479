"""The official calendar as the rules read it: holidays and adjusted working days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg

from fleet.holidays import calendar
from telematics.rules.working_time import holiday_name, is_workday, off_hours
from tests.telematics.rules.conftest import (
    WORK,
)
from tests.telematics.test_derive import cfg


async def test_calendar_holidays_and_adjusted_working_days(apg: asyncpg.Connection) -> None:
    """The rules' calendar is the holidays table (seeded from chinese-calendar up to 2026)."""
    await calendar.load(apg)
    c = cfg()
    assert not is_workday(date(2026, 10, 1)) and holiday_name(date(2026, 10, 1)) == "国庆节"
    assert is_workday(date(2026, 10, 10))  # Saturday, adjusted working day (调休)
    assert not is_workday(date(2026, 11, 28))  # an ordinary Saturday
    assert off_hours(datetime(2026, 10, 1, 2, 0, tzinfo=UTC), c) == (True, "holiday:国庆节")
    assert off_hours(datetime(2026, 10, 10, 2, 0, tzinfo=UTC), c) == (False, "")
    assert off_hours(WORK, c) == (False, "")
    assert off_hours(datetime(2026, 11, 24, 13, 0, tzinfo=UTC), c) == (True, "after_hours")
    assert off_hours(datetime(2026, 11, 23, 22, 30, tzinfo=UTC), c) == (True, "after_hours")
