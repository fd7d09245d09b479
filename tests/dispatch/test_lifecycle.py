"""The whole life of a trip over HTTP, as each role, with audit chain, notifications, track."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.audit import verify
from tests.conftest import Login
from tests.dispatch.conftest import API, EventTap, World, make_vehicle, trip_body


async def test_trip_from_request_to_settlement(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World, events: EventTap
) -> None:
    req = await login("requester.qingxiu")
    appr = await login("approver.qingxiu")
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    uid = world.users

    # Requester files a draft, then submits it.
    r = await client.post(f"{API}/trips", json=trip_body(world), headers=req)
    assert r.status_code == 201, r.text
    trip = r.json()
    assert trip["state"] == "draft" and trip["kind"] == "in_county"
    assert trip["allowed_body_types"] == ["sedan", "suv"]
    assert trip["planned_km"] > 0 and trip["unit_id"] == world.requester_unit
    tid = trip["id"]
    r = await client.post(f"{API}/trips/{tid}/submit", headers=req)
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "approval_needed"
            and uid["approver.qingxiu"] in (e["user_ids"] or [])
        )
    )

    # The approver sees it in the inbox and approves.
    r = await client.get(f"{API}/approvals/inbox", headers=appr)
    assert r.status_code == 200 and tid in [i["trip"]["id"] for i in r.json()["items"]]
    r = await client.post(f"{API}/trips/{tid}/approve", json={"comment": "同意"}, headers=appr)
    assert r.status_code == 200 and r.json()["state"] == "approved"
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "approved"
            and e["user_ids"] == [uid["requester.qingxiu"]]
        )
    )
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "dispatch_waiting"
            and uid["dispatcher.qingxiu"] in e["user_ids"]
            and uid["dispatcher.nanning"] in e["user_ids"]
        )
    )

    # The dispatcher finds it in the queue and assigns a vehicle and the demo driver.
    r = await client.get(f"{API}/dispatch/queue", headers=disp)
    assert tid in [t["id"] for t in r.json()]
    total = int(r.headers["X-Total-Count"])
    assert total == len(r.json())
    # Paged: one row per page, the header still tells the queue's length.
    r = await client.get(f"{API}/dispatch/queue", params={"limit": 1}, headers=disp)
    assert len(r.json()) == 1 and r.headers["X-Total-Count"] == str(total)
    r = await client.get(f"{API}/dispatch/queue", params={"limit": 0}, headers=disp)
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    vid = await make_vehicle(session, world.pool_unit, body_type="sedan", seats=5)
    r = await client.post(
        f"{API}/trips/{tid}/assign",
        json={"vehicle_id": vid, "driver_id": world.driver_id},
        headers=disp,
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "new_assignment"
            and e["user_ids"] == [uid["driver.qingxiu"]]
        )
    )
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "assigned"
            and uid["requester.qingxiu"] in e["user_ids"]
        )
    )
    r = await client.get(f"{API}/trips/{tid}", headers=req)
    assert r.json()["state"] == "assigned"
    assert r.json()["serving_unit_id"] == world.pool_unit  # the trip records both units

    # The driver's phone: my assignments, accept, depart, arrive, complete.
    r = await client.get(f"{API}/me/assignments", headers=drv)
    mine = r.json()["items"]
    assert r.status_code == 200 and mine[0]["id"] == aid and mine[0]["trip_state"] == "assigned"
    r = await client.post(f"{API}/assignments/{aid}/accept", headers=drv)
    assert r.status_code == 200 and r.json()["state"] == "accepted"
    departed = datetime.now(UTC) - timedelta(minutes=50)
    r = await client.post(
        f"{API}/assignments/{aid}/depart",
        json={"odometer_km": 12000.5, "at": departed.isoformat()},
        headers=drv,
    )
    assert r.status_code == 200 and r.json()["state"] == "departed"

    # Positions recorded while out: the track summary links them to the trip.
    lat, lon = world.here
    dlat, dlon = lat + 0.03, lon + 0.02
    for i in range(11):
        f = i / 10
        await session.execute(
            text(
                "INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, acc, fix)"
                " VALUES (:v, :ts, 'T-TEST', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 40,"
                " true, true)"
            ),
            {
                "v": vid,
                "ts": departed + timedelta(minutes=2 + 4 * i),
                "lat": lat + (dlat - lat) * f,
                "lon": lon + (dlon - lon) * f,
            },
        )
    r = await client.post(f"{API}/assignments/{aid}/arrive", json={}, headers=drv)
    assert r.status_code == 200 and r.json()["arrived_at"]
    r = await client.post(
        f"{API}/assignments/{aid}/complete",
        json={
            "odometer_km": 12009.0,
            "tolls_cny": "15.00",
            "parking_cny": "10.00",
            "energy_cny": "40.50",
            "notes": "顺利",
        },
        headers=drv,
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "completed"

    r = await client.get(f"{API}/trips/{tid}/track-summary", headers=disp)
    assert r.status_code == 200, r.text
    ts = r.json()
    assert ts["points"] == 11 and ts["odometer_km"] == 8.5
    assert 3.5 < ts["actual_km"] < 4.5  # the straight line between the points
    assert ts["end_distance_km"] < 0.05 and ts["closest_approach_km"] < 0.05
    assert 45 < ts["actual_minutes"] < 60 and ts["planned_minutes"] == 180
    r = await client.get(f"{API}/trips/{tid}/track", headers=await login("auditor"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    feature = r.json()
    assert (
        feature["geometry"]["type"] == "LineString"
        and len(feature["geometry"]["coordinates"]) == 11
    )
    assert feature["properties"]["vehicle_id"] == vid

    # An auditor finds the trip by its vehicle and by its driver; other vehicles' lists don't
    # hold it; the trips export takes the same filters.
    aud = await login("auditor")
    for params in ({"vehicle_id": vid}, {"driver_id": world.driver_id}):
        r = await client.get(f"{API}/trips", params=params, headers=aud)
        assert r.status_code == 200 and tid in [t["id"] for t in r.json()["items"]], params
    r = await client.get(f"{API}/trips", params={"vehicle_id": vid + 10_000}, headers=aud)
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await client.get(f"{API}/trips", params={"vehicle_id": "abc"}, headers=aud)
    assert r.status_code == 422 and "vehicle_id" in r.text
    r = await client.get(f"{API}/exports/trips.csv", params={"vehicle_id": vid}, headers=aud)
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 2  # header + this trip

    # Costs booked at completion; the passenger rates; the dispatcher settles.
    r = await client.get(f"{API}/costs", params={"trip_id": tid}, headers=disp)
    assert sorted(c["kind"] for c in r.json()["items"]) == ["fuel", "parking", "toll"]
    r = await client.post(
        f"{API}/trips/{tid}/ratings", json={"score": 5, "comment": "准时"}, headers=req
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"{API}/trips/{tid}/settle", json={"note": "费用已核"}, headers=disp)
    assert r.status_code == 200 and r.json()["state"] == "settled"

    # Every transition is in the hash-chained audit log, with actor, from, to; the chain verifies.
    r = await client.get(f"{API}/trips/{tid}/history", headers=req)
    steps = [(h["actor"], h["from_state"], h["to_state"]) for h in r.json() if h["to_state"]]
    assert steps == [
        ("requester.qingxiu", None, "draft"),
        ("requester.qingxiu", "draft", "submitted"),
        ("approver.qingxiu", "submitted", "approved"),
        ("dispatcher.qingxiu", "approved", "assigned"),
        ("driver.qingxiu", "assigned", "accepted"),
        ("driver.qingxiu", "accepted", "departed"),
        ("driver.qingxiu", "departed", "completed"),
        ("dispatcher.qingxiu", "completed", "settled"),
    ]
    ids = [
        r[0]
        for r in (
            await session.execute(
                text(
                    "SELECT id FROM audit_log WHERE entity = 'trip' AND entity_id = :t ORDER BY id"
                ),
                {"t": str(tid)},
            )
        ).all()
    ]
    assert len(ids) >= 8
    assert await verify(session) == []
    # The chain links them: each entry's prev_hash is the previous entry's hash.
    linked = await session.scalar(
        text(
            "SELECT bool_and(a.prev_hash = b.hash) FROM audit_log a JOIN audit_log b"
            " ON b.id = a.id - 1 WHERE a.id = ANY(:ids)"
        ),
        {"ids": ids},
    )
    assert linked is True
    await events.wait_for(
        lambda e: (
            e["type"] == "trip" and e["data"]["trip_id"] == tid and e["data"]["to"] == "settled"
        )
    )
    # Trip events about the booking name the vehicle and driver (the console marks the car).
    await events.wait_for(
        lambda e: (
            e["type"] == "trip"
            and e["data"]["trip_id"] == tid
            and e["data"]["to"] == "departed"
            and e["data"]["vehicle_id"] == vid
            and e["data"]["driver_id"] == world.driver_id
            and e["data"]["assignment_id"] == aid
        )
    )


async def test_decline_goes_back_to_dispatch_and_reassign(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World, events: EventTap
) -> None:
    from tests.dispatch.conftest import approved_trip

    trip = await approved_trip(client, login, world)
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    v1 = await make_vehicle(session, world.pool_unit)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": v1, "driver_id": world.driver_id},
        headers=disp,
    )
    aid = r.json()["id"]
    r = await client.post(
        f"{API}/assignments/{aid}/decline", json={"reason": "身体不适"}, headers=drv
    )
    assert r.status_code == 200 and r.json()["state"] == "declined"
    r = await client.get(f"{API}/trips/{trip['id']}", headers=disp)
    assert r.json()["state"] == "reassigned" and r.json()["state_reason"] == "身体不适"
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "driver_declined"
            and world.users["dispatcher.qingxiu"] in e["user_ids"]
        )
    )
    # The declined booking no longer holds the vehicle: it can be booked again, with a new driver.
    from tests.dispatch.conftest import make_driver

    d2 = await make_driver(session, world.pool_unit, "C1")
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign", json={"vehicle_id": v1, "driver_id": d2}, headers=disp
    )
    assert r.status_code == 201, r.text
    # Vehicle failure before departure: dispatch takes it back, the trip is reassigned again.
    r = await client.post(
        f"{API}/trips/{trip['id']}/vehicle-failed", json={"reason": "发动机故障"}, headers=disp
    )
    assert r.status_code == 200 and r.json()["state"] == "reassigned"
    r = await client.get(f"{API}/trips/{trip['id']}/assignments", headers=disp)
    assert [a["state"] for a in r.json()] == ["declined", "failed"]


async def test_cancel_before_departure_frees_the_vehicle(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    from tests.dispatch.conftest import approved_trip

    trip = await approved_trip(client, login, world)
    disp = await login("dispatcher.qingxiu")
    req = await login("requester.qingxiu")
    v = await make_vehicle(session, world.pool_unit)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=disp,
    )
    assert r.status_code == 201
    r = await client.post(
        f"{API}/trips/{trip['id']}/cancel", json={"reason": "会议取消"}, headers=req
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = await client.get(f"{API}/trips/{trip['id']}/assignments", headers=disp)
    assert r.json()[0]["state"] == "cancelled"
    # Same vehicle, same time, another trip: allowed now.
    other = await approved_trip(client, login, world)
    r = await client.post(
        f"{API}/trips/{other['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=disp,
    )
    assert r.status_code == 201, r.text


async def test_unreachable_bus_never_breaks_a_request(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    """Redis down: the request still succeeds and commits; the lost notification is logged."""
    import asyncio

    from dispatch import notify
    from fleet import outbox
    from telematics import bus

    loop_id = id(asyncio.get_running_loop())
    saved = outbox._clients.get(loop_id)
    dead = bus.redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    outbox._clients[loop_id] = dead
    try:
        r = await client.post(
            f"{API}/trips",
            json={**trip_body(world), "submit": True},
            headers=await login("requester.qingxiu"),
        )
        assert r.status_code == 201, r.text
        await notify.flush_pending()
        r = await client.get(
            f"{API}/trips/{r.json()['id']}", headers=await login("approver.qingxiu")
        )
        assert r.status_code == 200 and r.json()["state"] == "submitted"
    finally:
        if saved is None:
            outbox._clients.pop(loop_id, None)
        else:
            outbox._clients[loop_id] = saved
        await dead.aclose()
