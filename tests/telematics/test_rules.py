"""Supervision rules fire on crafted positions, and stay quiet when they should."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.holidays import calendar
from telematics.derive.cycle import Deriver
from telematics.rules.working_time import holiday_name, is_workday, off_hours
from tests.telematics.test_derive import a_vehicle, cfg, insert_positions, offset, raw, run_until

BASE = (22.817, 108.366)


@pytest.fixture
async def apg(conn: AsyncConnection) -> asyncpg.Connection:
    return await raw(conn)


def drive(
    start: datetime,
    n: int,
    speed: float,
    *,
    dt: int = 10,
    east_m: float = 50.0,
    origin: tuple[float, float] = BASE,
    acc: bool = True,
) -> list[dict[str, Any]]:
    lat, lon = origin
    out = []
    for i in range(n):
        la, lo = offset(lat, lon, 0.0, east_m * i)
        out.append(
            {
                "ts": start + timedelta(seconds=dt * i),
                "lat": la,
                "lon": lo,
                "speed_kmh": speed,
                "acc": acc,
            }
        )
    return out


async def alerts(apg: asyncpg.Connection, vid: int, kind: str | None = None) -> list[Any]:
    return list(
        await apg.fetch(
            "SELECT kind, started_at, ended_at, message, evidence::text AS evidence, dedup_key,"
            " org_id FROM alerts WHERE vehicle_id = $1 AND ($2::text IS NULL OR kind = $2)"
            " ORDER BY started_at",
            vid,
            kind,
        )
    )


async def derive(apg: asyncpg.Connection, pts: list[dict[str, Any]], vid: int, **kw: Any) -> Any:
    await insert_positions(apg, vid, pts)
    d = Deriver(cfg(window_s=7200, **kw))
    now = max(p["ts"] for p in pts) + timedelta(seconds=30)
    start = min(p["ts"] for p in pts) - timedelta(seconds=1)
    return await run_until(d, apg, now, start=start)


# Tuesday 24 Nov 2026, 10:00 Asia/Shanghai: a working day, in working hours
WORK = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# The geofence tests' fences exist before the drives they judge (a fence applies from its
# creation on).
FENCED_SINCE = WORK - timedelta(days=30)


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


async def test_overspeed_held_long_enough(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    body = await apg.fetchval("SELECT body_type FROM vehicles WHERE id = $1", vid)
    limit = cfg().speed_limits.for_body(body)
    pts = (
        drive(WORK, 6, 60)
        + drive(WORK + timedelta(seconds=60), 3, limit + 20, east_m=90)  # 20 s: too short
        + drive(WORK + timedelta(seconds=90), 6, 60)
        + drive(WORK + timedelta(seconds=150), 6, limit + 25, east_m=90)  # 50 s: fires
        + drive(WORK + timedelta(seconds=210), 6, 60)
    )
    reps = await derive(apg, pts, vid)
    found = await alerts(apg, vid, "overspeed")
    assert len(found) == 1, found
    a = found[0]
    assert a["started_at"] == WORK + timedelta(seconds=150)
    assert a["ended_at"] == WORK + timedelta(seconds=200)
    ev = orjson.loads(a["evidence"])
    assert ev["type"] == "FeatureCollection"
    assert ev["thresholds"]["limit_kmh"] == limit
    assert ev["thresholds"]["limit_source"] == f"body_type:{body}"
    assert ev["window"]["duration_s"] == 50
    points = [f for f in ev["features"] if f["geometry"]["type"] == "Point"]
    assert len(points) == 6 and all(f["properties"]["speed_kmh"] > limit for f in points)
    assert a["dedup_key"] == f"overspeed:{vid}:{int((WORK + timedelta(seconds=150)).timestamp())}"
    published = [e for r in reps for e in r.events if e[0] == "alert"]
    assert len(published) == 1 and published[0][2]["kind"] == "overspeed"
    # The new alert is a state change: in the audit log, by the derive worker.
    entry = await apg.fetchrow(
        "SELECT actor, to_state, data->>'kind' AS kind FROM audit_log"
        " WHERE action = 'alert.create' AND entity = 'alert' AND entity_id = $1",
        str(published[0][2]["id"]),
    )
    assert entry is not None and tuple(entry) == ("derive", "open", "overspeed")

    # running the same vehicle again yields no second alert
    d = Deriver(cfg(window_s=7200))
    await d.reprocess_vehicle(apg, vid, WORK, WORK + timedelta(hours=1))
    assert len(await alerts(apg, vid, "overspeed")) == 1


async def test_overspeed_by_speed_limit_geofence(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    county = await apg.fetchval("SELECT id FROM orgs WHERE code = '450103'")
    lat, lon = BASE
    await apg.execute(
        "INSERT INTO geofences (name, purpose, org_id, geom, speed_limit_kmh, created_at) VALUES"
        " ('school zone', 'speed_limit', $1, ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint($2, $3),"
        " 4326), 0.05)), 40, $4)",
        county,
        lon,
        lat,
        FENCED_SINCE,
    )
    reps = await derive(apg, drive(WORK, 8, 70), vid)
    found = await alerts(apg, vid, "overspeed")
    assert len(found) == 1
    ev = orjson.loads(found[0]["evidence"])
    assert ev["thresholds"]["limit_kmh"] == 40 and ev["thresholds"]["limit_source"] == "geofence"
    assert reps


async def test_geofence_exit(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    county = await apg.fetchval("SELECT id FROM orgs WHERE code = '450103'")
    lat, lon = BASE
    gid = await apg.fetchval(
        "INSERT INTO geofences (name, purpose, org_id, geom, created_at) VALUES ('青秀区',"
        " 'allowed_area', $1, ST_Multi(ST_MakeEnvelope($2 - 0.01, $3 - 0.01, $2 + 0.01,"
        " $3 + 0.01, 4326)), $4) RETURNING id",
        county,
        lon,
        lat,
        FENCED_SINCE,
    )
    # 40 points eastwards at 100 m per 10 s: leaves the 1 km half-width box after ~10 points
    await derive(apg, drive(WORK, 40, 36, east_m=100), vid)
    found = await alerts(apg, vid, "geofence_exit")
    assert len(found) == 1
    ev = orjson.loads(found[0]["evidence"])
    assert ev["thresholds"]["allowed_area_geofence_ids"] == [gid]
    assert ev["window"]["duration_s"] >= 60


async def test_geofence_applies_from_its_creation(apg: asyncpg.Connection) -> None:
    """A fence created mid-drive judges only the pings after it: the exit alert starts at
    its creation at the earliest, and a fence created now raises nothing for past drives."""
    vid = await a_vehicle(apg)
    county = await apg.fetchval("SELECT id FROM orgs WHERE code = '450103'")
    lat, lon = BASE
    box = (
        "INSERT INTO geofences (name, purpose, org_id, geom, created_at) VALUES ('青秀区',"
        " 'allowed_area', $1, ST_Multi(ST_MakeEnvelope($2 - 0.01, $3 - 0.01, $2 + 0.01,"
        " $3 + 0.01, 4326)), coalesce($4, now())) RETURNING id"
    )
    # Created now (the default): the drive on 24 November is before it existed.
    now_fence = await apg.fetchval(box, county, lon, lat, None)
    await derive(apg, drive(WORK, 40, 36, east_m=100), vid)
    assert await alerts(apg, vid, "geofence_exit") == []
    await apg.execute("DELETE FROM geofences WHERE id = $1", now_fence)
    # Created 4 minutes into a drive that left the box after ~100 s: outside from 4 min on.
    later = WORK + timedelta(days=1)
    created = later + timedelta(minutes=4)
    await apg.fetchval(box, county, lon, lat, created)
    await derive(apg, drive(later, 40, 36, east_m=100), vid)
    found = await alerts(apg, vid, "geofence_exit")
    assert len(found) == 1 and found[0]["started_at"] >= created, found


async def test_geofence_inside_does_not_fire(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    county = await apg.fetchval("SELECT id FROM orgs WHERE code = '450103'")
    lat, lon = BASE
    await apg.execute(
        "INSERT INTO geofences (name, purpose, org_id, geom, created_at) VALUES ('big',"
        " 'allowed_area', $1, ST_Multi(ST_MakeEnvelope($2 - 1, $3 - 1, $2 + 1, $3 + 1, 4326)), $4)",
        county,
        lon,
        lat,
        FENCED_SINCE,
    )
    await derive(apg, drive(WORK, 40, 36, east_m=100), vid)
    assert await alerts(apg, vid) == []


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


async def test_not_back_at_depot_overnight(apg: asyncpg.Connection) -> None:
    far, home = await apg.fetch(
        "SELECT v.id, ST_Y(v.depot) AS lat, ST_X(v.depot) AS lon FROM vehicles v"
        " WHERE v.status = 'in_service' ORDER BY v.id LIMIT 2"
    )
    evening = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 20:00 local
    la, lo = offset(far["lat"], far["lon"], 5000, 0)
    await insert_positions(
        apg, far["id"], [{"ts": evening, "lat": la, "lon": lo, "speed_kmh": 0, "acc": False}]
    )
    await insert_positions(
        apg,
        home["id"],
        [{"ts": evening, "lat": home["lat"], "lon": home["lon"], "speed_kmh": 0, "acc": False}],
    )
    d = Deriver(cfg())
    before = await d.cycle(apg, now=datetime(2026, 11, 24, 14, 59, tzinfo=UTC))  # 22:59
    assert not [e for e in before.events if e[2].get("kind") == "not_at_depot"]
    check = datetime(2026, 11, 24, 15, 1, tzinfo=UTC)  # 23:01 local
    rep = await d.cycle(apg, now=check)
    kinds = [(e[2]["kind"], e[2]["vehicle_id"]) for e in rep.events if e[0] == "alert"]
    assert ("not_at_depot", far["id"]) in kinds
    assert ("not_at_depot", home["id"]) not in kinds
    found = await alerts(apg, far["id"], "not_at_depot")
    ev = orjson.loads(found[0]["evidence"])
    assert 4900 < ev["distance_m"] < 5100
    assert {f["properties"]["role"] for f in ev["features"]} == {"depot", "last_position"}
    again = await d.cycle(apg, now=check + timedelta(minutes=5))  # once per night
    assert not [e for e in again.events if e[0] == "alert"]


async def test_terminal_offline_while_in_service(apg: asyncpg.Connection) -> None:
    rows = await apg.fetch(
        "SELECT id FROM vehicles WHERE status = 'in_service' ORDER BY id LIMIT 2"
    )
    live, sealed = rows[0]["id"], rows[1]["id"]
    await apg.execute("UPDATE vehicles SET status = 'sealed' WHERE id = $1", sealed)
    last = WORK - timedelta(minutes=40)
    for vid in (live, sealed):
        await insert_positions(
            apg, vid, [{"ts": last, "lat": BASE[0], "lon": BASE[1], "speed_kmh": 0, "acc": False}]
        )
    d = Deriver(cfg())
    evening = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 22:00 local: outside working hours
    rep = await d.cycle(apg, now=evening)
    assert not [e for e in rep.events if e[0] == "alert" and e[2]["kind"] == "terminal_offline"]
    rep = await d.cycle(apg, now=WORK)
    got = [e[2]["vehicle_id"] for e in rep.events if e[0] == "alert"]
    assert got == [live]
    rep = await d.cycle(apg, now=WORK + timedelta(minutes=1))
    assert not [e for e in rep.events if e[0] == "alert"]
    # the terminal reports again: the alert gets its end
    back = WORK + timedelta(minutes=2)
    await insert_positions(
        apg, live, [{"ts": back, "lat": BASE[0], "lon": BASE[1], "speed_kmh": 0, "acc": False}]
    )
    await d.cycle(apg, now=back + timedelta(seconds=5))
    a = (await alerts(apg, live, "terminal_offline"))[0]
    assert a["started_at"] == last and a["ended_at"] == back
