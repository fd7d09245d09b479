"""Two dispatchers book the same vehicle for overlapping trips at once: exactly one wins.

Real connections and committed data in a throw-away database: each HTTP request runs in its
own transaction on its own pooled connection, as in production.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from fleet.config import get_settings
from fleet.db import drop_database, make_engine, make_sessionmaker
from tests.conftest import DEMO_PASSWORD, prepare_database

DB = f"{get_settings().db.name}_dispatch_conc"
API = "/api/v1"


async def _race(settings: Any) -> list[tuple[int, int, str | None, str | None]]:
    from web.app import create_app

    app = create_app(settings, manage_engine=False)
    engine = make_engine(settings.db, application_name="test-concurrency")
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.settings = settings
    conn = await asyncpg.connect(settings.db.dsn())
    results: list[tuple[int, int, str | None, str | None]] = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:

            async def login(u: str) -> dict[str, str]:
                r = await client.post(
                    f"{API}/auth/login", json={"username": u, "password": DEMO_PASSWORD}
                )
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            req, appr, disp = (
                await login("requester.qingxiu"),
                await login("approver.qingxiu"),
                await login("dispatcher.qingxiu"),
            )
            pool_unit = await conn.fetchval("SELECT id FROM orgs WHERE code = '450103-03'")
            lat, lon = await conn.fetchrow(
                "SELECT ST_Y(location), ST_X(location) FROM orgs WHERE code = '450103'"
            )
            for rnd in range(5):
                vid = await conn.fetchval(
                    "INSERT INTO vehicles (plate, vin, category, body_type, seats, energy,"
                    " engine_l, price_cny, purchase_date, unit_id, depot) VALUES ($1, $2, 'pool',"
                    " 'sedan', 5, 'ice', 1.5, 150000, '2024-01-01', $3,"
                    " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326)) RETURNING id",
                    f"桂AC{rnd:05d}",
                    f"LCNCX{rnd:012d}",
                    pool_unit,
                )
                drivers = [
                    await conn.fetchval(
                        "INSERT INTO drivers (name, licence_class, licence_no, unit_id)"
                        " VALUES ($1, 'C1', $2, $3) RETURNING id",
                        f"并发{rnd}{i}",
                        f"C{rnd}{i:09d}",
                        pool_unit,
                    )
                    for i in range(2)
                ]
                trips = []
                start = datetime.now(UTC) + timedelta(days=2 + rnd)
                for k in range(2):
                    s = start + timedelta(hours=k)  # the second overlaps the first
                    body = {
                        "passengers": 2,
                        "purpose": "并发派车测试",
                        "origin": {"lat": lat, "lon": lon, "address": "甲"},
                        "destination": {"lat": lat + 0.02, "lon": lon, "address": "乙"},
                        "departure_at": s.isoformat(),
                        "return_at": (s + timedelta(hours=3)).isoformat(),
                        "submit": True,
                    }
                    r = await client.post(f"{API}/trips", json=body, headers=req)
                    assert r.status_code == 201, r.text
                    tid = r.json()["id"]
                    r = await client.post(f"{API}/trips/{tid}/approve", json={}, headers=appr)
                    assert r.status_code == 200, r.text
                    trips.append(tid)
                responses = await asyncio.gather(
                    *(
                        client.post(
                            f"{API}/trips/{tid}/assign",
                            json={"vehicle_id": vid, "driver_id": did},
                            headers=disp,
                        )
                        for tid, did in zip(trips, drivers, strict=True)
                    )
                )
                codes = sorted(r.status_code for r in responses)
                loser = next((r for r in responses if r.status_code != 201), None)
                results.append(
                    (
                        codes[0],
                        codes[1],
                        loser.json()["error"]["code"] if loser is not None else None,
                        loser.json()["error"]["message"] if loser is not None else None,
                    )
                )
                active = await conn.fetchval(
                    "SELECT count(*) FROM trip_assignments WHERE vehicle_id = $1"
                    " AND state IN ('assigned', 'accepted', 'departed')",
                    vid,
                )
                assert active == 1
    finally:
        await conn.close()
        await engine.dispose()
    return results


async def _raw_constraint(settings: Any) -> str:
    """Two raw transactions insert overlapping bookings: the second waits, then is refused."""
    c1 = await asyncpg.connect(settings.db.dsn())
    c2 = await asyncpg.connect(settings.db.dsn())
    try:
        vehicle = await c1.fetchval("SELECT vehicle_id FROM trip_assignments LIMIT 1")
        # The race's losers: trips without an active booking.
        trip, other_trip = [
            r[0]
            for r in await c1.fetch(
                "SELECT id FROM trip_requests t WHERE NOT EXISTS (SELECT 1 FROM trip_assignments a"
                " WHERE a.trip_id = t.id AND a.state IN ('assigned', 'accepted', 'departed'))"
                " ORDER BY id LIMIT 2"
            )
        ]
        driver, other_driver = [
            r[0] for r in await c1.fetch("SELECT id FROM drivers ORDER BY id DESC LIMIT 2")
        ]
        start = datetime.now(UTC) + timedelta(days=30)
        insert = (
            "INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, starts_at, ends_at)"
            " VALUES ($1, $2, $3, $4, $5)"
        )
        t1 = c1.transaction()
        await t1.start()
        await c1.execute(insert, trip, vehicle, driver, start, start + timedelta(hours=2))
        t2 = c2.transaction()
        await t2.start()
        second = asyncio.create_task(
            c2.execute(
                insert,
                other_trip,
                vehicle,
                other_driver,
                start + timedelta(hours=1),
                start + timedelta(hours=3),
            )
        )
        await asyncio.sleep(0.5)
        assert not second.done()  # blocked on the first transaction's uncommitted row
        await t1.rollback()  # nothing to keep; now commit a real one to show the refusal
        await second
        await t2.commit()
        t1 = c1.transaction()
        await t1.start()
        try:
            await c1.execute(insert, trip, vehicle, driver, start, start + timedelta(hours=2))
        except asyncpg.ExclusionViolationError as exc:
            await t1.rollback()
            return str(exc.constraint_name)
        await t1.rollback()
        return "none"
    finally:
        await c1.close()
        await c2.close()


def test_concurrent_assignments_exactly_one_wins() -> None:
    settings = prepare_database(DB)
    try:
        results = asyncio.run(_race(settings))
        for low, high, code, _ in results:
            assert (low, high) == (201, 409), results
            assert code == "vehicle_double_booked", results
        assert asyncio.run(_raw_constraint(settings)) == "trip_assignments_vehicle_no_overlap"
    finally:
        asyncio.run(drop_database(DB))
