"""Derived state: segmentation on a synthetic track, status transitions, mileage, re-runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from telematics.derive.cycle import Deriver
from telematics.derive.segment import Pt, Segmenter, SegState
from telematics.rules.thresholds import DeriveSettings

# A Monday inside working hours in Asia/Shanghai (10:00 local), so no off-hours alerts.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
BASE = (22.817, 108.366)  # Nanning


def cfg(**kw: Any) -> DeriveSettings:
    return DeriveSettings(_env_file=None, **kw)  # type: ignore[call-arg]


async def raw(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection inside the test's outer transaction (rolled back after).

    SQLAlchemy begins its transaction lazily; one statement makes it begin, so that the
    worker's own ``conn.transaction()`` becomes a savepoint inside it."""
    await conn.execute(text("SELECT 1"))
    r = await conn.get_raw_connection()
    return r.driver_connection  # type: ignore[return-value]


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return (
        lat + north_m / 111_195.0,
        lon + east_m / (111_195.0 * math.cos(math.radians(lat))),
    )


def synthetic_day() -> list[dict[str, Any]]:
    """Parked 10 min (acc off) · 100 m shuffle in the car park · drive ~3 km east with a 60 s
    red light · park 10 min with acc off · drive back 1 km · park."""
    pts: list[dict[str, Any]] = []
    t = T0
    lat, lon = BASE

    def add(speed: float, acc: bool, east_m: float = 0.0, dt: int = 10) -> None:
        nonlocal t, lat, lon
        lat, lon = offset(lat, lon, 0.0, east_m)
        pts.append({"ts": t, "lat": lat, "lon": lon, "speed_kmh": speed, "acc": acc})
        t += timedelta(seconds=dt)

    for _ in range(60):  # 10 min parked
        add(0, False)
    for _ in range(5):  # 100 m at 7 km/h in the car park: not a trip
        add(7, True, 20)
    for _ in range(30):  # stands 5 min, engine on
        add(0, True)
    for _ in range(60):  # 3 km at 18 m/s... (≈ 50 m per 10 s = 18 km/h)
        add(18, True, 50)
    for _ in range(6):  # red light 60 s: not a stop
        add(0, True)
    for _ in range(30):  # 1.5 km more
        add(40, True, 50)
    for _ in range(60):  # parked, ignition off
        add(0, False)
    for _ in range(20):  # 1 km back west
        add(36, True, -50)
    for _ in range(30):  # stands, engine on, 5 min -> trip ends by time
        add(0, True)
    return pts


def test_segmenter_on_synthetic_track() -> None:
    seg = Segmenter(motion_speed_kmh=5, stop_min_s=180, trip_min_distance_m=200)
    st = SegState()
    points = [Pt(p["ts"], p["lat"], p["lon"], p["speed_kmh"], p["acc"]) for p in synthetic_day()]
    # fed in three chunks: the state carries over exactly
    out = seg.feed(st, points[:70]) + seg.feed(st, points[70:200]) + seg.feed(st, points[200:])
    final: dict[tuple[str, datetime], Any] = {(s.kind, s.started_at): s for s in out}
    trips = sorted((s for s in final.values() if s.kind == "trip"), key=lambda s: s.started_at)
    stops = sorted((s for s in final.values() if s.kind == "stop"), key=lambda s: s.started_at)
    assert len(trips) == 2, trips
    assert len(stops) == 3, stops
    first, second = trips
    assert 4300 < first.distance_m < 4700  # 3 km + 1.5 km, the red light inside
    assert first.ended_at is not None and first.ended_at - first.started_at < timedelta(minutes=20)
    assert 900 < second.distance_m < 1100
    assert stops[1].ignition_off
    assert stops[-1].ended_at is None  # still parked
    # points already seen change nothing: only the open stop comes back, as it was
    again = seg.feed(SegState.from_json(st.to_json()), points)
    assert len(again) == 1 and again[0] == stops[-1]


async def insert_positions(
    apg: asyncpg.Connection,
    vehicle_id: int,
    pts: Sequence[dict[str, Any]],
    *,
    received_at: datetime | None = None,
) -> None:
    await apg.executemany(
        "INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg,"
        " odometer_km, acc, fix, flags, received_at) VALUES ($1, $2, $3,"
        " ST_SetSRID(ST_MakePoint($4, $5), 4326), $6, 0, $7, $8, true, $9, $10)",
        [
            (
                vehicle_id,
                p["ts"],
                f"GX{vehicle_id:08d}",
                p["lon"],
                p["lat"],
                p["speed_kmh"],
                p.get("odometer_km"),
                p["acc"],
                p.get("flags", 0),
                received_at or p.get("received_at") or p["ts"] + timedelta(seconds=1),
            )
            for p in pts
        ],
    )
    last = max(pts, key=lambda p: p["ts"])
    await apg.execute(
        "INSERT INTO latest_positions (vehicle_id, ts, terminal_id, geom, speed_kmh, acc,"
        " status, status_since) VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326),"
        " $6, $7, 'parked', $2) ON CONFLICT (vehicle_id) DO UPDATE SET ts = EXCLUDED.ts,"
        " geom = EXCLUDED.geom, speed_kmh = EXCLUDED.speed_kmh, acc = EXCLUDED.acc"
        " WHERE latest_positions.ts < EXCLUDED.ts",
        vehicle_id,
        last["ts"],
        f"GX{vehicle_id:08d}",
        last["lon"],
        last["lat"],
        last["speed_kmh"],
        last["acc"],
    )


async def a_vehicle(apg: asyncpg.Connection, county: str = "450103") -> int:
    vid = await apg.fetchval(
        "SELECT v.id FROM vehicles v JOIN orgs o ON o.id = v.unit_id"
        " WHERE o.path <@ (SELECT path FROM orgs WHERE code = $1) ORDER BY v.id LIMIT 1",
        county,
    )
    assert vid is not None
    return int(vid)


async def run_until(
    d: Deriver, apg: asyncpg.Connection, now: datetime, *, start: datetime | None = None
) -> list[Any]:
    """Run cycles (each reads window_s of arrivals) until the cursor reaches now - settle."""
    reports = []
    if start is not None:
        await apg.execute(
            "INSERT INTO derive_cursors (name, position) VALUES ('received_at', $1)"
            " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
            start,
        )
    for _ in range(500):
        rep = await d.cycle(apg, now=now)
        reports.append(rep)
        if rep.cursor is not None and rep.cursor >= now - timedelta(seconds=d.cfg.settle_s):
            break
    return reports


@pytest.fixture
async def apg(conn: AsyncConnection) -> asyncpg.Connection:
    return await raw(conn)


async def test_worker_segments_status_and_mileage(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    pts = synthetic_day()
    for i, p in enumerate(pts):
        p["odometer_km"] = 1000.0 + i * 0.0  # constant odometer: mileage falls back to track
    await insert_positions(apg, vid, pts[:150])
    d = Deriver(cfg(window_s=3600))
    now = pts[149]["ts"] + timedelta(seconds=30)
    reports = await run_until(d, apg, now, start=T0 - timedelta(seconds=1))
    assert sum(r.points for r in reports) == 150
    status = await apg.fetchrow("SELECT status FROM latest_positions WHERE vehicle_id = $1", vid)
    assert status["status"] == "moving"
    assert any(e[0] == "status" and e[2]["status"] == "moving" for r in reports for e in r.events)

    # arriving after the cursor moved on (received_at is the ingest's clock)
    await insert_positions(apg, vid, pts[150:], received_at=now + timedelta(seconds=1))
    now2 = pts[-1]["ts"] + timedelta(seconds=30)
    reports = await run_until(d, apg, now2)
    trips = await apg.fetch(
        "SELECT started_at, ended_at, distance_m FROM vehicle_trips WHERE vehicle_id = $1"
        " ORDER BY started_at",
        vid,
    )
    stops = await apg.fetch(
        "SELECT started_at, ended_at, ignition_off FROM vehicle_stops WHERE vehicle_id = $1"
        " ORDER BY started_at",
        vid,
    )
    assert len(trips) == 2 and len(stops) == 3
    assert 4300 < trips[0]["distance_m"] < 4700
    status = await apg.fetchrow(
        "SELECT status, status_since FROM latest_positions WHERE vehicle_id = $1", vid
    )
    assert status["status"] == "parked"
    mileage = await apg.fetchrow(
        "SELECT distance_km, source, points FROM vehicle_daily_mileage WHERE vehicle_id = $1", vid
    )
    assert mileage["source"] == "track" and mileage["points"] == len(pts)
    assert 5.4 < mileage["distance_km"] < 5.8  # 100 m + 3 km + 1.5 km + 1 km

    # offline after the timeout (10 min without pings), announced once
    later = pts[-1]["ts"] + timedelta(minutes=11)
    rep = await d.cycle(apg, now=later)
    assert [e[2]["status"] for e in rep.events if e[0] == "status"] == ["offline"]
    assert rep.events[0][1].startswith("1.")  # org_path of the unit
    rep = await d.cycle(apg, now=later + timedelta(seconds=10))
    assert not [e for e in rep.events if e[0] == "status"]
    row = await apg.fetchrow("SELECT status FROM latest_positions WHERE vehicle_id = $1", vid)
    assert row["status"] == "offline"

    # exact recomputation (PostGIS) agrees with the incremental figure
    await d.recompute_mileage(apg, vid, T0.date(), T0.date())
    exact = await apg.fetchval(
        "SELECT distance_km FROM vehicle_daily_mileage WHERE vehicle_id = $1", vid
    )
    assert exact == pytest.approx(mileage["distance_km"], rel=0.01)


async def test_odometer_mileage_and_late_pings_reprocess(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    pts = synthetic_day()
    for i, p in enumerate(pts):
        p["odometer_km"] = 5000.0 + i * 0.02
    late = pts[100:140]  # a coverage gap, uploaded later
    on_time = pts[:100] + pts[140:]
    await insert_positions(apg, vid, on_time)
    d = Deriver(cfg(window_s=3600))
    now = pts[-1]["ts"] + timedelta(seconds=30)
    await run_until(d, apg, now, start=T0 - timedelta(seconds=1))
    before = await apg.fetchval("SELECT count(*) FROM vehicle_trips WHERE vehicle_id = $1", vid)

    received = now + timedelta(seconds=5)
    await insert_positions(apg, vid, late, received_at=received)
    reports = await run_until(d, apg, received + timedelta(seconds=30))
    assert sum(r.reprocessed for r in reports) == 1
    trips = await apg.fetch(
        "SELECT started_at, distance_m FROM vehicle_trips WHERE vehicle_id = $1 ORDER BY 1", vid
    )
    assert before >= 1 and len(trips) == 2
    assert 4300 < trips[0]["distance_m"] < 4700
    m = await apg.fetchrow(
        "SELECT distance_km, source FROM vehicle_daily_mileage WHERE vehicle_id = $1", vid
    )
    assert m["source"] == "odometer"
    assert m["distance_km"] == pytest.approx((len(pts) - 1) * 0.02, rel=1e-6)

    # re-running the whole vehicle is idempotent
    snapshot = await apg.fetch(
        "SELECT started_at, ended_at, distance_m FROM vehicle_trips WHERE vehicle_id = $1"
        " ORDER BY 1",
        vid,
    )
    await d.reprocess_vehicle(apg, vid, T0, now)
    await d.reprocess_vehicle(apg, vid, T0, now)
    again = await apg.fetch(
        "SELECT started_at, ended_at, distance_m FROM vehicle_trips WHERE vehicle_id = $1"
        " ORDER BY 1",
        vid,
    )
    assert [tuple(r) for r in again] == [tuple(r) for r in snapshot]


async def test_flagged_points_are_ignored_by_derivation(apg: asyncpg.Connection) -> None:
    vid = await a_vehicle(apg)
    pts = synthetic_day()[:60]  # parked
    jump = dict(pts[30])
    jump["ts"] = pts[30]["ts"] + timedelta(seconds=5)
    jump["lat"] += 1.0  # 111 km away, flagged JUMP by the ingest
    jump["speed_kmh"] = 80
    jump["acc"] = True
    jump["flags"] = 1
    await insert_positions(apg, vid, [*pts, jump])
    d = Deriver(cfg(window_s=3600))
    await run_until(d, apg, pts[-1]["ts"] + timedelta(seconds=30), start=T0 - timedelta(seconds=1))
    assert await apg.fetchval("SELECT count(*) FROM vehicle_trips WHERE vehicle_id = $1", vid) == 0
    km = await apg.fetchval(
        "SELECT distance_km FROM vehicle_daily_mileage WHERE vehicle_id = $1", vid
    )
    assert km < 0.01
