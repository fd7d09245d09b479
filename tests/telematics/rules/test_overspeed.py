"""Overspeed: held long enough over the body type's limit, or a speed-limit geofence's."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import orjson

from telematics.derive.cycle import Deriver
from tests.telematics.rules.conftest import (
    BASE,
    FENCED_SINCE,
    WORK,
    alerts,
    derive,
    drive,
)
from tests.telematics.test_derive import a_vehicle, cfg


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
