"""Every refusal path: role, scope, state machine, double booking, vehicle and driver rules."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Login
from tests.dispatch.conftest import (
    API,
    World,
    approved_trip,
    make_driver,
    make_vehicle,
    trip_body,
)


def err(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    e: dict[str, Any] = r.json()["error"]
    assert e["code"] == code, e
    return e


async def _assign(
    client: httpx.AsyncClient, headers: dict[str, str], trip_id: int, vehicle: int, driver: int
) -> httpx.Response:
    return await client.post(
        f"{API}/trips/{trip_id}/assign",
        json={"vehicle_id": vehicle, "driver_id": driver},
        headers=headers,
    )


async def test_wrong_role_is_403(client: httpx.AsyncClient, login: Login, world: World) -> None:
    trip = await approved_trip(client, login, world)
    req = await login("requester.qingxiu")
    err(await _assign(client, req, trip["id"], 1, 1), 403, "role_required")
    err(
        await client.post(f"{API}/trips", json=trip_body(world), headers=await login("auditor")),
        403,
        "role_required",
    )
    err(
        await client.post(
            f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("driver.qingxiu")
        ),
        403,  # the role first: a driver learns nothing of the trip's state
        "role_required",
    )
    r = await client.post(f"{API}/trips", json={**trip_body(world), "submit": True}, headers=req)
    tid = r.json()["id"]
    err(
        await client.post(
            f"{API}/trips/{tid}/approve", json={}, headers=await login("driver.qingxiu")
        ),
        403,
        "role_required",
    )
    err(
        await client.put(
            f"{API}/standards/usage/1",
            json={"min_passengers": 1, "max_passengers": 4, "body_types": ["sedan"]},
            headers=await login("dispatcher.qingxiu"),
        ),
        403,
        "role_required",
    )
    err(await client.get(f"{API}/me/assignments", headers=req), 403, "role_required")


async def test_wrong_scope_is_404_or_403(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    trip = await approved_trip(client, login, world)
    other = await login("dispatcher.xingning")
    v = await make_vehicle(session, world.pool_unit)
    # What the caller cannot see is answered as missing (404), the same as an unknown id.
    err(await _assign(client, other, trip["id"], v, world.driver_id), 404, "not_found")
    # A vehicle of another county that is not pooled is invisible to the Qingxiu dispatcher.
    xunit = await session.scalar(text("SELECT id FROM orgs WHERE code = '450102-03'"))
    xv = await make_vehicle(session, xunit)
    disp = await login("dispatcher.qingxiu")
    e = err(await _assign(client, disp, trip["id"], xv, world.driver_id), 404, "not_found")
    assert e["field"] == "vehicle_id"
    # A driver of another county's unit is out of scope too.
    xd = await make_driver(session, xunit, "A1")
    e = err(await _assign(client, disp, trip["id"], v, xd), 404, "not_found")
    assert e["field"] == "driver_id"
    # A requester files only for units in scope; other people's trips are not readable.
    req = await login("requester.qingxiu")
    r = await client.post(f"{API}/trips", json={**trip_body(world), "unit_id": xunit}, headers=req)
    assert err(r, 404, "not_found")["field"] == "unit_id"
    err(await client.get(f"{API}/trips/{trip['id']}", headers=other), 404, "not_found")
    # An approver decides only for units under their binding.
    r = await client.post(
        f"{API}/users",
        json={
            "username": "requester.xingning",
            "password": "test-password-1",
            "display_name": "兴宁申请人",
            "org_id": xunit,
            "roles": [{"role": "requester", "org_id": xunit}],
        },
        headers=await login("admin"),
    )
    assert r.status_code == 201, r.text
    xreq = await login("requester.xingning", "test-password-1")
    r = await client.post(f"{API}/trips", json={**trip_body(world), "submit": True}, headers=xreq)
    assert r.status_code == 201, r.text
    err(
        await client.post(
            f"{API}/trips/{r.json()['id']}/approve",
            json={},
            headers=await login("approver.qingxiu"),
        ),
        404,
        "not_found",
    )
    # Auditors read everything in scope and change nothing.
    aud = await login("auditor")
    assert (await client.get(f"{API}/trips/{trip['id']}", headers=aud)).status_code == 200
    err(
        await client.post(f"{API}/trips/{trip['id']}/cancel", json={"reason": "审计"}, headers=aud),
        403,
        "role_required",
    )
    err(await _assign(client, aud, trip["id"], v, world.driver_id), 403, "role_required")


async def test_shared_pool_serves_another_unit_and_records_both(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    trip = await approved_trip(client, login, world)
    xunit = await session.scalar(text("SELECT id FROM orgs WHERE code = '450102-03'"))
    pooled = await make_vehicle(session, xunit, shared_pool="city")
    own_driver = await make_driver(session, xunit, "C1")
    disp = await login("dispatcher.qingxiu")
    r = await _assign(client, disp, trip["id"], pooled, own_driver)
    assert r.status_code == 201, r.text
    r = await client.get(f"{API}/trips/{trip['id']}", headers=disp)
    assert r.json()["unit_id"] == world.requester_unit and r.json()["serving_unit_id"] == xunit
    # The lending unit's dispatcher sees the trip too (serving unit in scope).
    r = await client.get(f"{API}/trips/{trip['id']}", headers=await login("dispatcher.xingning"))
    assert r.status_code == 200


async def test_illegal_transitions_are_409_with_current_state(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    req = await login("requester.qingxiu")
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    r = await client.post(f"{API}/trips", json=trip_body(world), headers=req)
    tid = r.json()["id"]
    e = err(await _assign(client, disp, tid, 1, world.driver_id), 409, "illegal_transition")
    assert e["current"] == "draft"
    e = err(
        await client.post(f"{API}/trips/{tid}/settle", json={}, headers=disp),
        409,
        "illegal_transition",
    )
    assert e["current"] == "draft" and e["allowed"] == ["submitted", "cancelled"]

    trip = await approved_trip(client, login, world)
    e = err(
        await client.post(
            f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu")
        ),
        409,
        "illegal_transition",
    )
    assert e["current"] == "approved"
    v = await make_vehicle(session, world.pool_unit)
    aid = (await _assign(client, disp, trip["id"], v, world.driver_id)).json()["id"]
    e = err(
        await client.post(f"{API}/assignments/{aid}/depart", json={"odometer_km": 1}, headers=drv),
        409,
        "illegal_transition",
    )
    assert e["current"] == "assigned"
    assert (await client.post(f"{API}/assignments/{aid}/accept", headers=drv)).status_code == 200
    r = await client.post(f"{API}/assignments/{aid}/depart", json={"odometer_km": 100}, headers=drv)
    assert r.status_code == 200
    e = err(
        await client.post(
            f"{API}/trips/{trip['id']}/cancel", json={"reason": "不去了"}, headers=req
        ),
        409,
        "illegal_transition",
    )
    assert e["current"] == "departed"
    r = await client.post(
        f"{API}/assignments/{aid}/complete", json={"odometer_km": 99}, headers=drv
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "odometer_km"
    # Another driver's assignment is not yours: answered as a missing one.
    other_user = await session.scalar(
        text("SELECT id FROM users WHERE username = 'requester.qingxiu'")
    )
    await session.execute(
        text("INSERT INTO role_bindings (user_id, role, org_id) VALUES (:u, 'driver', :o)"),
        {"u": other_user, "o": world.pool_unit},
    )
    err(
        await client.post(
            f"{API}/assignments/{aid}/complete", json={"odometer_km": 120}, headers=req
        ),
        404,
        "not_found",
    )


async def test_double_booking_vehicle_and_driver(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    a = await approved_trip(client, login, world, start_in_h=48, hours=3)
    b = await approved_trip(client, login, world, start_in_h=50, hours=3)  # overlaps a
    c = await approved_trip(client, login, world, start_in_h=51, hours=1)  # after a, overlaps b
    v = await make_vehicle(session, world.pool_unit)
    v2 = await make_vehicle(session, world.pool_unit)
    d2 = await make_driver(session, world.pool_unit, "C1")
    assert (await _assign(client, disp, a["id"], v, world.driver_id)).status_code == 201
    e = err(await _assign(client, disp, b["id"], v, d2), 409, "vehicle_double_booked")
    assert e["field"] == "vehicle_id" and e["trip_id"] == a["id"]
    e = err(await _assign(client, disp, b["id"], v2, world.driver_id), 409, "driver_double_booked")
    assert e["field"] == "driver_id"
    # Back to back (a ends exactly when c starts) is fine.
    assert (await _assign(client, disp, c["id"], v, world.driver_id)).status_code == 201
    # The database refuses it even when the service checks are bypassed.
    r = await session.execute(
        text(
            "SELECT count(*) FROM pg_constraint WHERE conname IN"
            " ('trip_assignments_vehicle_no_overlap', 'trip_assignments_driver_no_overlap')"
            " AND contype = 'x'"
        )
    )
    assert r.scalar_one() == 2


async def test_vehicle_rules(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    trip = await approved_trip(client, login, world, passengers=3)
    mpv = await make_vehicle(session, world.pool_unit, body_type="mpv", seats=7)
    e = err(
        await _assign(client, disp, trip["id"], mpv, world.driver_id), 422, "body_type_not_allowed"
    )
    assert e["field"] == "vehicle_id"
    broken = await make_vehicle(session, world.pool_unit, status="under_repair")
    err(
        await _assign(client, disp, trip["id"], broken, world.driver_id),
        409,
        "vehicle_not_in_service",
    )
    # ~10 km planned (wait-and-return) against a 5 km battery.
    weak = await make_vehicle(session, world.pool_unit, energy="bev", nev_range_km=5)
    err(
        await _assign(client, disp, trip["id"], weak, world.driver_id),
        422,
        "nev_range_insufficient",
    )
    strong = await make_vehicle(session, world.pool_unit, energy="bev", nev_range_km=400)
    assert (await _assign(client, disp, trip["id"], strong, world.driver_id)).status_code == 201

    seven = await approved_trip(client, login, world, passengers=7)
    assert seven["allowed_body_types"] == ["mpv"]
    # A 7-seat MPV carries 6 passengers besides its driver.
    err(await _assign(client, disp, seven["id"], mpv, world.driver_id), 422, "not_enough_seats")


async def test_driver_licence_must_fit(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    trip = await approved_trip(client, login, world, passengers=12)
    assert trip["allowed_body_types"] == ["minibus"]
    bus = await make_vehicle(session, world.pool_unit, body_type="minibus", seats=17)
    c1 = await make_driver(session, world.pool_unit, "C1")
    e = err(await _assign(client, disp, trip["id"], bus, c1), 422, "licence_mismatch")
    assert e["field"] == "driver_id" and "B1" in e["message"]
    b1 = await make_driver(session, world.pool_unit, "B1")
    assert (await _assign(client, disp, trip["id"], bus, b1)).status_code == 201


async def test_request_no_standard_allows(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    req = await login("requester.qingxiu")
    # The courier standard allows 1–2 passengers only.
    r = await client.post(
        f"{API}/trips", json={**trip_body(world, passengers=3), "nature": "courier"}, headers=req
    )
    e = err(r, 422, "no_standard")
    assert e["field"] == "passengers"
    body = trip_body(world)
    r = await client.post(
        f"{API}/trips", json={**body, "return_at": body["departure_at"]}, headers=req
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.post(f"{API}/trips", json={**trip_body(world), "colour": "red"}, headers=req)
    assert r.status_code == 422 and r.json()["error"]["field"] == "colour"


async def test_batch_refusals_item_by_item(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    """One batch (as an accepted proposal): overlaps within the batch, scope and unknown
    vehicles are refused item by item with the manual codes, the rest booked; the units the
    checks read are loaded once for the batch, not once per item."""
    from sqlalchemy import event

    disp = await login("dispatcher.qingxiu")
    a = await approved_trip(client, login, world, start_in_h=60, hours=3)
    b = await approved_trip(client, login, world, start_in_h=61, hours=3)  # overlaps a
    c = await approved_trip(client, login, world, start_in_h=63, hours=1)  # back to back with a
    d = await approved_trip(client, login, world, start_in_h=70, hours=1)
    v = await make_vehicle(session, world.pool_unit)
    v2 = await make_vehicle(session, world.pool_unit)
    d2 = await make_driver(session, world.pool_unit, "C1")
    xunit = await session.scalar(text("SELECT id FROM orgs WHERE code = '450102-03'"))
    xv = await make_vehicle(session, int(xunit))
    items = [
        (a["id"], v, world.driver_id),
        (b["id"], v, world.driver_id),  # vehicle and driver both taken: the vehicle is named
        (b["id"], v2, world.driver_id),  # driver taken
        (b["id"], v, d2),  # vehicle taken
        (c["id"], v, world.driver_id),  # starts when a ends: fine
        (d["id"], xv, d2),  # another county's vehicle
        (d["id"], 999_999_999, d2),
        (d["id"], v2, d2),
    ]
    org_reads: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "\nFROM orgs" in statement:
            org_reads.append(statement)

    sync_conn = (await session.connection()).sync_connection
    assert sync_conn is not None
    event.listen(sync_conn, "before_cursor_execute", count)
    try:
        r = await client.post(
            f"{API}/dispatch/assignments",
            json={"items": [{"trip_id": t, "vehicle_id": x, "driver_id": y} for t, x, y in items]},
            headers=disp,
        )
    finally:
        event.remove(sync_conn, "before_cursor_execute", count)
    assert r.status_code == 200, r.text
    got = [(x["ok"], (x.get("error") or {}).get("code")) for x in r.json()]
    assert got == [
        (True, None),
        (False, "vehicle_double_booked"),
        (False, "driver_double_booked"),
        (False, "vehicle_double_booked"),
        (True, None),
        (False, "not_found"),
        (False, "not_found"),
        (True, None),
    ]
    assert r.json()[1]["error"]["trip_id"] == a["id"]
    assert len(org_reads) == 1, org_reads
    states: dict[int, str] = dict(
        (
            await session.execute(
                text("SELECT id, state FROM trip_requests WHERE id = ANY(:ids)"),
                {"ids": [a["id"], b["id"], c["id"], d["id"]]},
            )
        ).all()
    )
    assert states == {a["id"]: "assigned", b["id"]: "approved", c["id"]: "assigned",
                      d["id"]: "assigned"}  # fmt: skip
