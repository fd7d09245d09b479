"""Geofence exit: outside every allowed area that applies, from the fence's creation on."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import orjson

from tests.telematics.rules.conftest import (
    BASE,
    FENCED_SINCE,
    WORK,
    alerts,
    derive,
    drive,
)
from tests.telematics.test_derive import a_vehicle


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
