"""Trip-aware alerts from real stored positions: private use, overtime, destination deviation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision.base import Rules
from dispatch.supervision.catalog import run_checks
from telematics.rules.moving import MOVING_MIN_SPEED_KMH
from tests.conftest import Login
from tests.dispatch.conftest import API, EventTap, World, approved_trip, make_vehicle


async def _track(
    session: AsyncSession,
    vehicle_id: int,
    start: datetime,
    origin: tuple[float, float],
    *,
    minutes: int,
    speed_kmh: float,
    step_deg: float = 0.002,
    acc: bool = True,
) -> None:
    """One ping a minute heading north-east; ~0.3 km a step at the default step."""
    lat, lon = origin
    for i in range(minutes + 1):
        await session.execute(
            text(
                "INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, acc, fix)"
                " VALUES (:v, :ts, 'T-TEST', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :speed,"
                " :acc, true) ON CONFLICT DO NOTHING"
            ),
            {
                "v": vehicle_id,
                "ts": start + timedelta(minutes=i),
                "lat": lat + step_deg * i,
                "lon": lon + step_deg * i,
                "speed": speed_kmh,
                "acc": acc,
            },
        )


async def test_private_use_alert_from_stored_positions(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World, events: EventTap
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    v = await make_vehicle(session, world.pool_unit)
    # 10 minutes driving, ignition on, no trip: suspected private use (~3 km).
    await _track(session, v, now - timedelta(minutes=90), world.here, minutes=10, speed_kmh=40)
    # Parked with GPS jitter (speed 0) for half an hour: not movement.
    await _track(
        session, v, now - timedelta(minutes=70), world.here, minutes=30, speed_kmh=0, step_deg=1e-5
    )
    # Driving within a booked trip's window: covered, no alert.
    trip = await approved_trip(client, login, world)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 201
    await session.execute(
        text("UPDATE trip_assignments SET starts_at = :s, ends_at = :e WHERE id = :id"),
        {"s": now - timedelta(minutes=35), "e": now + timedelta(hours=1), "id": r.json()["id"]},
    )
    await _track(session, v, now - timedelta(minutes=30), world.here, minutes=20, speed_kmh=50)
    # Another vehicle drives 2 minutes only, slowly and briefly: under both thresholds.
    v2 = await make_vehicle(session, world.pool_unit)
    await _track(
        session, v2, now - timedelta(minutes=60), world.here, minutes=1, speed_kmh=12, step_deg=1e-3
    )

    report = await run_checks(session, now - timedelta(hours=2), now)
    await session.commit()
    assert report.private_use == 1
    alert = (
        await session.execute(
            text(
                "SELECT kind, vehicle_id, org_id, started_at, ended_at, evidence, status,"
                " ST_Y(location) AS lat FROM alerts WHERE id = :id"
            ),
            {"id": report.alert_ids[0]},
        )
    ).one()
    assert alert.kind == "private_use" and alert.vehicle_id == v and alert.org_id == world.pool_unit
    assert alert.started_at == now - timedelta(minutes=90)
    assert alert.ended_at == now - timedelta(minutes=80)
    ev = alert.evidence
    assert ev["points"] == 11 and len(ev["positions"]) == 11 and 2.5 < ev["distance_km"] < 3.5
    assert abs(alert.lat - world.here[0]) < 1e-6
    entry = (
        await session.execute(
            text(
                "SELECT actor, to_state FROM audit_log WHERE action = 'alert.create'"
                " AND entity_id = :id"
            ),
            {"id": str(report.alert_ids[0])},
        )
    ).one()
    assert tuple(entry) == ("supervision", "open")
    await events.wait_for(
        lambda e: (
            e["type"] == "alert"
            and e["data"]["id"] == report.alert_ids[0]
            and e["data"]["kind"] == "private_use"
        )
    )
    # Re-running over an overlapping window does not alert twice.
    again = await run_checks(session, now - timedelta(hours=3), now)
    assert again.private_use == 0
    n = await session.scalar(
        text("SELECT count(*) FROM alerts WHERE kind = 'private_use' AND vehicle_id = :v"), {"v": v}
    )
    assert n == 1


async def test_private_use_straddling_worker_rounds_is_one_alert_extended(
    session: AsyncSession, world: World
) -> None:
    """The worker's rounds overlap ([previous round - lookback, now)): a drive still going
    on at the first round is raised once, and later rounds extend that alert to its last
    fix instead of raising another. The check runs without JIT and leaves the session's
    setting as it found it."""
    now = datetime.now(UTC).replace(microsecond=0)
    v = await make_vehicle(session, world.pool_unit)
    start = now - timedelta(minutes=40)
    await _track(session, v, start, world.here, minutes=30, speed_kmh=40)  # until now - 10 min
    await session.execute(text("SET LOCAL jit = on"))
    lookback = timedelta(minutes=10)
    first_round = now - timedelta(minutes=25)  # mid-drive: fixes up to now - 26 min seen
    r1 = await run_checks(session, first_round - 2 * lookback, first_round, now=first_round)
    assert r1.private_use == 1
    assert await session.scalar(text("SELECT current_setting('jit')")) == "on"
    second_round = first_round + timedelta(minutes=1)
    r2 = await run_checks(session, first_round - lookback, second_round, now=second_round)
    third_round = now
    r3 = await run_checks(session, second_round - lookback, third_round, now=third_round)
    assert r2.private_use == 0 and r3.private_use == 0
    rows = (
        await session.execute(
            text(
                "SELECT id, started_at, ended_at FROM alerts"
                " WHERE kind = 'private_use' AND vehicle_id = :v"
            ),
            {"v": v},
        )
    ).all()
    assert len(rows) == 1 and rows[0].id == r1.alert_ids[0]
    assert rows[0].started_at == start
    assert rows[0].ended_at == start + timedelta(minutes=30)


async def test_an_extended_private_use_alert_restates_its_distance_and_duration(
    session: AsyncSession, world: World
) -> None:
    """An alert raised on the first few minutes of a drive and extended by later rounds
    must describe the whole drive, not keep its first window's "x km / y 分钟"."""
    now = datetime.now(UTC).replace(microsecond=0)
    v = await make_vehicle(session, world.pool_unit)
    start = now - timedelta(minutes=40)
    await _track(session, v, start, world.here, minutes=30, speed_kmh=40)  # ~0.3 km a minute
    first = start + timedelta(minutes=4)  # the first round sees 3 minutes (until is open), ~0.9 km
    r1 = await run_checks(session, first - timedelta(minutes=10), first, now=first)
    assert r1.private_use == 1
    aid = r1.alert_ids[0]
    sql = text("SELECT message, evidence, ended_at FROM alerts WHERE id = :id")
    message, ev, _ = (await session.execute(sql, {"id": aid})).one()
    assert ev["duration_min"] == 3.0 and "/ 3 分钟" in message
    for k in range(1, 4):  # the next rounds carry it on to the end of the drive
        at = first + timedelta(minutes=9 * k)
        await run_checks(session, at - timedelta(minutes=10), at, now=at)
    message, ev, ended_at = (await session.execute(sql, {"id": aid})).one()
    assert ended_at == start + timedelta(minutes=30)
    assert ev["duration_min"] == 30.0 and ev["points"] == 31 and len(ev["positions"]) == 31
    assert 8.5 < ev["distance_km"] < 9.5, ev["distance_km"]
    assert ev["rule"] == "moving without an active approved trip"  # the rest is kept
    assert f"{round(ev['distance_km'], 1)} km / 30 分钟" in message, message


async def test_overtime_and_destination_deviation(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    trip = await approved_trip(client, login, world)
    v = await make_vehicle(session, world.pool_unit)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=disp,
    )
    aid = r.json()["id"]
    assert (await client.post(f"{API}/assignments/{aid}/accept", headers=drv)).status_code == 200
    departed = now - timedelta(hours=4)
    r = await client.post(
        f"{API}/assignments/{aid}/depart",
        json={"odometer_km": 500, "at": departed.isoformat()},
        headers=drv,
    )
    assert r.status_code == 200
    # The approved window ended 2 h ago; the car is still out.
    await session.execute(
        text("UPDATE trip_requests SET departure_at = :d, return_at = :r WHERE id = :t;"),
        {"d": departed, "r": now - timedelta(hours=2), "t": trip["id"]},
    )
    await session.execute(
        text("UPDATE trip_assignments SET starts_at = :d, ends_at = :r WHERE id = :a"),
        {"d": departed, "r": now - timedelta(hours=2), "a": aid},
    )
    await session.commit()
    report = await run_checks(session, now - timedelta(minutes=30), now, now=now)
    assert report.trip_overtime == 1
    ev = await session.scalar(
        text("SELECT evidence FROM alerts WHERE kind = 'trip_overtime' AND trip_id = :t"),
        {"t": trip["id"]},
    )
    assert ev["still_out"] is True and 115 < ev["late_minutes"] < 125

    # The track heads away from the approved destination (north-east of the origin, ~13 km).
    dest = (world.here[0] + 0.03, world.here[1] + 0.02)
    await _track(
        session,
        v,
        departed + timedelta(minutes=5),
        (world.here[0] - 0.1, world.here[1] - 0.1),
        minutes=30,
        speed_kmh=40,
    )
    await session.commit()
    r = await client.post(
        f"{API}/assignments/{aid}/complete", json={"odometer_km": 530}, headers=drv
    )
    assert r.status_code == 200, r.text
    report = await run_checks(
        session, now - timedelta(minutes=5), datetime.now(UTC) + timedelta(seconds=1)
    )
    assert report.destination_deviation == 1
    ev = await session.scalar(
        text("SELECT evidence FROM alerts WHERE kind = 'destination_deviation' AND trip_id = :t"),
        {"t": trip["id"]},
    )
    assert ev["closest_approach_km"] > 5 and ev["points"] == 31
    assert ev["destination"]["lat"] == dest[0]
    r = await client.get(f"{API}/trips/{trip['id']}/track-summary", headers=disp)
    assert r.json()["closest_approach_km"] > 5 and r.json()["odometer_km"] == 30


def test_private_use_moves_as_telematics_does() -> None:
    """One meaning of "moving" (telematics.rules.moving) for the segmenter and private use."""
    assert Rules().moving_speed_kmh == MOVING_MIN_SPEED_KMH
