"""Track API: GeoJSON and GPX, simplification, trips/stops/mileage, latest positions, scope."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import gpxpy
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from telematics.derive.cycle import Deriver
from tests.conftest import Login
from tests.telematics.test_derive import (
    T0,
    a_vehicle,
    cfg,
    insert_positions,
    raw,
    run_until,
    synthetic_day,
)


@pytest.fixture
async def apg(conn: AsyncConnection) -> asyncpg.Connection:
    return await raw(conn)


async def test_track_geojson_gpx_and_scope(
    client: httpx.AsyncClient, apg: asyncpg.Connection, login: Login
) -> None:
    vid = await a_vehicle(apg)
    pts = synthetic_day()
    await insert_positions(apg, vid, pts)
    h = await login("dispatcher.qingxiu")
    start, end = T0.isoformat(), (T0 + timedelta(hours=2)).isoformat()
    url = f"/api/v1/vehicles/{vid}/track"

    r = await client.get(url, params={"start": start, "end": end}, headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    line, *points = fc["features"]
    assert line["geometry"]["type"] == "LineString"
    assert len(line["geometry"]["coordinates"]) == len(pts) == len(points)
    assert line["properties"]["vehicle_id"] == vid and not line["properties"]["simplified"]
    assert 5500 < line["properties"]["distance_m"] < 5700
    p0 = points[0]
    assert p0["geometry"]["type"] == "Point"
    assert p0["properties"]["ts"] == "2026-11-23T02:00:00Z"
    assert set(p0["properties"]) >= {"ts", "speed_kmh", "heading_deg", "acc"}

    # long range: bounded by max_points, the line simplified in the database
    r = await client.get(url, params={"start": start, "end": end, "max_points": 20}, headers=h)
    fc = r.json()
    line, *points = fc["features"]
    assert line["properties"]["simplified"] and line["properties"]["points"] == len(pts)
    assert len(points) <= 21 and len(line["geometry"]["coordinates"]) < len(pts)
    assert points[0]["properties"]["ts"] == "2026-11-23T02:00:00Z"

    r = await client.get(url, params={"start": start, "end": end, "points": "false"}, headers=h)
    assert len(r.json()["features"]) == 1

    r = await client.get(
        url, params={"start": start, "end": end}, headers={**h, "Accept-Encoding": "gzip"}
    )
    assert r.status_code == 200 and len(r.json()["features"]) == len(pts) + 1
    assert r.headers.get("content-encoding") == "gzip"  # ~100 KB of GeoJSON

    r = await client.get(url, params={"start": start, "end": end, "format": "gpx"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/gpx+xml")
    gpx = gpxpy.parse(r.text)
    seg = gpx.tracks[0].segments[0]
    assert len(seg.points) == len(pts)
    assert seg.points[0].time is not None and seg.points[0].time.isoformat().startswith(
        "2026-11-23T02:00:00"
    )
    assert max(p.speed or 0 for p in seg.points) == pytest.approx(40 / 3.6, abs=0.01)

    # scope and validation
    other = await login("dispatcher.xingning")
    r = await client.get(url, params={"start": start, "end": end}, headers=other)
    assert r.status_code == 404 and r.json()["error"]["field"] == "vehicle_id"
    r = await client.get(
        "/api/v1/vehicles/99999999/track", params={"start": start, "end": end}, headers=h
    )
    assert r.status_code == 404
    r = await client.get(url, params={"start": end, "end": start}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "end"
    r = await client.get(
        url, params={"start": start, "end": (T0 + timedelta(days=40)).isoformat()}, headers=h
    )
    assert r.status_code == 422
    r = await client.get(url, params={"start": start, "end": end, "format": "kml"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "format"
    auditor = await login("auditor")
    r = await client.get(url, params={"start": start, "end": end}, headers=auditor)
    assert r.status_code == 200


async def test_shared_pool_vehicle_visible_to_neighbour_county(
    client: httpx.AsyncClient, apg: asyncpg.Connection, login: Login
) -> None:
    vid = await a_vehicle(apg, "450102")  # Xingning, same city (Nanning) as Qingxiu
    await insert_positions(apg, vid, synthetic_day()[:10])
    h = await login("dispatcher.qingxiu")
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    r = await client.get(f"/api/v1/vehicles/{vid}/track", params=params, headers=h)
    assert r.status_code == 404
    await apg.execute("UPDATE vehicles SET shared_pool = 'city' WHERE id = $1", vid)
    r = await client.get(f"/api/v1/vehicles/{vid}/track", params=params, headers=h)
    assert r.status_code == 200


async def test_trips_stops_mileage_endpoints(
    client: httpx.AsyncClient, apg: asyncpg.Connection, login: Login
) -> None:
    vid = await a_vehicle(apg)
    pts = synthetic_day()
    await insert_positions(apg, vid, pts)
    await run_until(
        Deriver(cfg(window_s=7200)),
        apg,
        pts[-1]["ts"] + timedelta(seconds=30),
        start=T0 - timedelta(seconds=1),
    )
    h = await login("auditor")
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=3)).isoformat()}
    r = await client.get(f"/api/v1/vehicles/{vid}/trips", params=params, headers=h)
    assert r.status_code == 200, r.text
    trips = r.json()
    assert trips["total"] == 2
    assert 4300 < trips["items"][0]["distance_m"] < 4700
    assert trips["items"][0]["end"] is not None
    r = await client.get(f"/api/v1/vehicles/{vid}/stops", params=params, headers=h)
    stops = r.json()
    assert stops["total"] == 3 and stops["items"][1]["ignition_off"] is True
    assert stops["items"][-1]["ended_at"] is None
    r = await client.get(
        f"/api/v1/vehicles/{vid}/mileage",
        params={"from": "2026-11-23", "to": "2026-11-23"},
        headers=h,
    )
    assert r.status_code == 200
    [day] = r.json()
    assert day["day"] == "2026-11-23" and day["source"] == "track"
    assert 5.4 < day["distance_km"] < 5.8
    r = await client.get(
        f"/api/v1/vehicles/{vid}/mileage",
        params={"from": "2026-11-23", "to": "2026-11-01"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "to"


async def test_latest_positions_in_scope(
    client: httpx.AsyncClient, apg: asyncpg.Connection, login: Login
) -> None:
    qx = await a_vehicle(apg, "450103")
    xn = await a_vehicle(apg, "450102")
    for vid in (qx, xn):
        await insert_positions(apg, vid, synthetic_day()[:3])
    h = await login("dispatcher.qingxiu")
    r = await client.get("/api/v1/positions/latest", headers=h)
    assert r.status_code == 200, r.text
    fc = r.json()
    ids = {f["properties"]["vehicle_id"] for f in fc["features"]}
    assert qx in ids and xn not in ids
    f = next(f for f in fc["features"] if f["id"] == qx)
    assert f["properties"]["ts"] == "2026-11-23T02:00:20.000Z" and f["properties"]["status"]
    admin = await login("admin")
    r = await client.get(
        "/api/v1/positions/latest",
        params={"bbox": "108.0,22.5,108.7,23.0"},
        headers={**admin, "Accept-Encoding": "identity"},
    )
    ids = {f["id"] for f in r.json()["features"]}
    assert {qx, xn} <= ids
    r = await client.get(
        "/api/v1/positions/latest", params={"bbox": "100,20,101,21"}, headers=admin
    )
    assert r.json()["features"] == [] and r.json()["total"] == 0
    r = await client.get("/api/v1/positions/latest", params={"bbox": "1,2,3"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "bbox"
    r = await client.get("/api/v1/positions/latest", params={"limit": 1}, headers=admin)
    assert len(r.json()["features"]) == 1 and r.json()["total"] >= 2
