"""Movement off hours and on non-working days (the holidays table, adjusted days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson
import structlog

from fleet.holidays import calendar
from telematics.rules.working_time import is_workday
from tests.telematics.rules.conftest import (
    alerts,
    derive,
    drive,
)
from tests.telematics.test_derive import a_vehicle


async def test_off_hours_holiday_and_adjusted_working_day(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    evening = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 21:00 local, Tuesday
    national_day = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)  # 10:00 local, holiday
    adjusted = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)  # Saturday, but a working day
    for start in (national_day, adjusted, evening):
        await derive(apg, drive(start, 20, 40), vid)
    found = await alerts(apg, vid)
    kinds = [(a["kind"], a["started_at"]) for a in found]
    assert kinds == [("holiday_movement", national_day), ("off_hours_movement", evening)], kinds
    ev = orjson.loads(found[0]["evidence"])
    assert ev["thresholds"]["reason"] == "holiday:国庆节"
    assert ev["thresholds"]["working_hours"] == "07:00-19:00"
    assert ev["thresholds"]["calendar"].startswith("holidays table v")


async def test_a_2027_holiday_is_read_from_the_table(apg: asyncpg.Connection) -> None:
    """chinese-calendar stops at 2026. A weekday of the 2027 Spring Festival is an ordinary
    working day until the year is in the table (with a warning, never silently); once a
    region admin adds it, the next derive cycle picks it up and movement there is an alert."""
    vid = await a_vehicle(apg)
    # The warning is once per process and year: an earlier test in this process may have
    # used it up, so start as a fresh process would (installing clears what was warned).
    calendar.install(calendar.current())
    spring = datetime(2027, 2, 8, 2, 0, tzinfo=UTC)  # Monday 8 Feb 2027, 10:00 Shanghai
    try:
        with structlog.testing.capture_logs() as logs:
            await derive(apg, drive(spring, 20, 40), vid)
        assert not calendar.current().covers(2027)
        assert is_workday(date(2027, 2, 8))
        assert await alerts(apg, vid) == []
        warned = [e for e in logs if e["event"] == "holidays.year_not_covered"]
        assert [(e["log_level"], e["year"]) for e in warned] == [("warning", 2027)]
        await apg.executemany(
            "INSERT INTO holidays (day, kind, name) VALUES ($1, $2, $3)",
            [(date(2027, 2, d), "holiday", "春节") for d in range(6, 14)]
            + [(date(2027, 2, 20), "workday", "春节")],
        )
        await derive(apg, drive(spring + timedelta(hours=1), 20, 40), vid)
        assert calendar.current().covers(2027)
        found = await alerts(apg, vid)
        assert [a["kind"] for a in found] == ["holiday_movement"], found
        assert "holiday:春节" in found[0]["message"]
        assert is_workday(date(2027, 2, 20))  # the adjusted Saturday
    finally:
        calendar.install(calendar.WorkCalendar())  # the rows are rolled back with the test


async def test_short_off_hours_move_does_not_fire(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    evening = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    await derive(apg, drive(evening, 6, 40), vid)  # 50 s < 120 s
    assert await alerts(apg, vid) == []
