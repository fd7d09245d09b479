"""Scope on every write, links included (issue 18 item 2), and authorise before revealing
(item 3): the defects found from outside, each reproduced as it was reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import Settings
from tests.conftest import Login, bearer, make_user
from tests.dispatch.conftest import API, World, approved_trip, make_driver, make_vehicle, trip_body


def err(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    e: dict[str, Any] = r.json()["error"]
    assert e["code"] == code, e
    if field is not None:
        assert e.get("field") == field, e
    return e


async def _org(session: AsyncSession, code: str) -> int:
    return int(await session.scalar(text("SELECT id FROM orgs WHERE code = :c"), {"c": code}))


async def _xingning_trip(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, world: World
) -> dict[str, Any]:
    """A trip filed by a requester of 兴宁区 (450102-03), submitted."""
    uid = await make_user(session, "req.xn", "450102-03", (("requester", "450102-03"),))
    r = await client.post(
        f"{API}/trips",
        json={**trip_body(world), "submit": True},
        headers=bearer(settings, uid),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# ---- costs: the vehicle and the trip belong together ----------------------------------------


async def test_cost_cannot_link_a_foreign_trip(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    """As reported: 青秀's dispatcher booked a cost on 青秀's vehicle against 兴宁's trip, and
    兴宁 then saw (and would settle) foreign costs on its trip."""
    xtrip = await _xingning_trip(client, session, settings, world)
    disp = await login("dispatcher.qingxiu")
    v = await make_vehicle(session, world.pool_unit)
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    body = {"vehicle_id": v, "kind": "toll", "amount_cny": "35.00", "occurred_on": day}
    r = await client.post(f"{API}/costs", json={**body, "trip_id": xtrip["id"]}, headers=disp)
    # Another county's trip is answered like one that does not exist.
    e = err(r, 404, "not_found", "trip_id")
    missing = await client.post(f"{API}/costs", json={**body, "trip_id": 10**12}, headers=disp)
    m = err(missing, 404, "not_found", "trip_id")
    assert m.keys() == e.keys()
    r = await client.get(
        f"{API}/costs", params={"trip_id": xtrip["id"]}, headers=await login("dispatcher.xingning")
    )
    assert r.status_code == 200 and r.json()["items"] == []

    # A trip in scope that the vehicle never served: the two do not belong together.
    own = await approved_trip(client, login, world)
    r = await client.post(f"{API}/costs", json={**body, "trip_id": own["id"]}, headers=disp)
    err(r, 422, "vehicle_not_on_trip", "trip_id")
    # Once the vehicle is booked for the trip, its costs may name it.
    r = await client.post(
        f"{API}/trips/{own['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=disp,
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"{API}/costs", json={**body, "trip_id": own["id"]}, headers=disp)
    assert r.status_code == 201, r.text


# ---- configuration has a level -------------------------------------------------------------


async def test_county_admin_cannot_change_region_configuration(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    county_admin = bearer(
        settings, await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    )
    r = await client.get(f"{API}/standards/usage", headers=county_admin)
    region_row = next(s for s in r.json() if s["org_id"] is None)
    usage = {"min_passengers": 1, "max_passengers": 4, "body_types": ["bus"]}
    err(
        await client.put(
            f"{API}/standards/usage/{region_row['id']}", json=usage, headers=county_admin
        ),
        403,
        "config_level",
    )
    err(
        await client.post(f"{API}/standards/usage", json=usage, headers=county_admin),
        403,
        "config_level",
    )
    err(
        await client.delete(f"{API}/standards/usage/{region_row['id']}", headers=county_admin),
        403,
        "config_level",
    )
    cap = {"category": "pool", "body_type": "sedan", "max_price_cny": "900000.00"}
    err(
        await client.put(f"{API}/standards/provisioning", json=cap, headers=county_admin),
        403,
        "config_level",
    )
    r = await client.get(f"{API}/standards/provisioning", headers=county_admin)
    prov_row = next(s for s in r.json() if s["org_id"] is None)
    err(
        await client.delete(f"{API}/standards/provisioning/{prov_row['id']}", headers=county_admin),
        403,
        "config_level",
    )
    chain = {"kind": "in_county", "steps": [{"level": "unit", "timeout_hours": 1}]}
    err(
        await client.put(f"{API}/approval-chains", json=chain, headers=county_admin),
        403,
        "config_level",
    )
    # Naming the region: an org outside the county admin's scope, answered as a missing one.
    region = await _org(session, "450000")
    err(
        await client.put(
            f"{API}/approval-chains", json={**chain, "org_id": region}, headers=county_admin
        ),
        404,
        "not_found",
        "org_id",
    )
    # Another county's configuration is not theirs either (and is not even visible).
    xingning = await _org(session, "450102")
    err(
        await client.put(
            f"{API}/approval-chains", json={**chain, "org_id": xingning}, headers=county_admin
        ),
        404,
        "not_found",
        "org_id",
    )
    err(
        await client.post(
            f"{API}/standards/usage", json={**usage, "org_id": xingning}, headers=county_admin
        ),
        404,
        "not_found",
        "org_id",
    )
    # Nothing changed.
    r = await client.get(f"{API}/standards/usage", headers=county_admin)
    assert next(s for s in r.json() if s["id"] == region_row["id"]) == region_row


async def test_a_county_may_tighten_standards_for_its_units_only(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    """Lower levels may add stricter rules of their own; every level's rules apply at once."""
    county_admin = bearer(
        settings, await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    )
    r = await client.post(
        f"{API}/standards/usage",
        json={
            "org_id": world.county,
            "min_passengers": 1,
            "max_passengers": 4,
            "body_types": ["sedan", "bus"],
        },
        headers=county_admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["org_id"] == world.county
    req = await login("requester.qingxiu")
    r = await client.post(f"{API}/trips", json=trip_body(world), headers=req)
    # The county allows sedans (and buses), the region sedans and SUVs: sedans only.
    assert r.json()["allowed_body_types"] == ["sedan"]
    xuid = await make_user(session, "req.xn", "450102-03", (("requester", "450102-03"),))
    r = await client.post(f"{API}/trips", json=trip_body(world), headers=bearer(settings, xuid))
    assert r.json()["allowed_body_types"] == ["sedan", "suv"]
    # 5 passengers: the county said nothing, the region's rule stands.
    r = await client.post(f"{API}/trips", json=trip_body(world, passengers=5), headers=req)
    assert r.json()["allowed_body_types"] == ["mpv"]

    # A county cap below the region's flags the county's vehicles only.
    v = await make_vehicle(session, world.pool_unit)  # pool sedan, 150,000 CNY
    xv = await make_vehicle(session, await _org(session, "450102-03"))
    r = await client.put(
        f"{API}/standards/provisioning",
        json={
            "org_id": world.county,
            "category": "pool",
            "body_type": "sedan",
            "max_price_cny": "120000.00",
        },
        headers=county_admin,
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        f"{API}/standards/provisioning/violations",
        params={"limit": 500},
        headers=await login("admin"),
    )
    flagged = {i["vehicle_id"] for i in r.json()["items"]}
    assert v in flagged and xv not in flagged


# ---- links to people -----------------------------------------------------------------------


async def test_county_admin_cannot_link_a_driver_to_a_foreign_user(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    county_admin = bearer(
        settings, await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    )
    foreign = await make_user(session, "drv.xn", "450102-03", (("driver", "450102-03"),))
    body = {
        "name": "覃师傅",
        "licence_class": "C1",
        "licence_no": "450103199001019999",
        "unit_id": world.pool_unit,
    }
    r = await client.post(f"{API}/drivers", json={**body, "user_id": foreign}, headers=county_admin)
    e = err(r, 404, "not_found", "user_id")
    r = await client.post(f"{API}/drivers", json={**body, "user_id": 10**12}, headers=county_admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == e["code"]
    # A city admin sees both counties' users, but a driver's login is a user of its county.
    city_admin = bearer(
        settings, await make_user(session, "admin.nn", "450100", (("admin", "450100"),))
    )
    r = await client.post(f"{API}/drivers", json={**body, "user_id": foreign}, headers=city_admin)
    err(r, 422, "user_not_in_county", "user_id")
    own = await make_user(session, "drv.qx", "450103-03", (("driver", "450103-03"),))
    r = await client.post(f"{API}/drivers", json={**body, "user_id": own}, headers=county_admin)
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    r = await client.patch(f"{API}/drivers/{did}", json={"user_id": foreign}, headers=county_admin)
    err(r, 404, "not_found", "user_id")
    # The foreign user does not get to read this driver's trips.
    r = await client.get(
        f"{API}/trips", params={"driver_id": did}, headers=bearer(settings, foreign)
    )
    assert r.status_code == 200 and r.json()["total"] == 0


async def test_passengers_are_existing_active_users_of_the_trips_county(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    req = await login("requester.qingxiu")
    xingning = world.users["dispatcher.xingning"]
    inactive = await make_user(session, "gone.qx", "450103-02", active=False)
    for bad in (10**12, xingning, inactive):
        r = await client.post(
            f"{API}/trips", json={**trip_body(world), "passenger_user_ids": [bad]}, headers=req
        )
        err(r, 422, "invalid_passenger", "passenger_user_ids.0")
    # More passenger accounts than passengers is inconsistent.
    colleague = await make_user(session, "clerk.qx", "450103-03")
    r = await client.post(
        f"{API}/trips",
        json={
            **trip_body(world, passengers=1),
            "passenger_user_ids": [colleague, world.users["approver.qingxiu"]],
        },
        headers=req,
    )
    err(r, 422, "invalid_passenger", "passenger_user_ids")
    # A colleague of another unit of the same county is a valid passenger and may read the trip.
    r = await client.post(
        f"{API}/trips", json={**trip_body(world), "passenger_user_ids": [colleague]}, headers=req
    )
    assert r.status_code == 201, r.text
    trip = r.json()
    r = await client.get(f"{API}/trips/{trip['id']}", headers=bearer(settings, colleague))
    assert r.status_code == 200
    # Editing the draft is checked the same way.
    r = await client.put(
        f"{API}/trips/{trip['id']}",
        json={**trip_body(world), "passenger_user_ids": [xingning]},
        headers=req,
    )
    err(r, 422, "invalid_passenger", "passenger_user_ids.0")
    r = await client.get(f"{API}/trips/{trip['id']}", headers=await login("dispatcher.xingning"))
    err(r, 404, "not_found")


# ---- authorise before revealing ------------------------------------------------------------


async def test_a_role_that_may_never_act_is_refused_before_any_state(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    """As reported: a driver's POST /trips/{id}/approve answered 409 with the trip's state."""
    trip = await approved_trip(client, login, world)
    drv = await login("driver.qingxiu")
    for action, body in (
        ("approve", {}),
        ("reject", {"reason": "不同意"}),
        ("return", {"reason": "请修改"}),
        ("delegate", {"user_id": world.users["approver.qingxiu"]}),
    ):
        for tid in (trip["id"], 10**12):
            r = await client.post(f"{API}/trips/{tid}/{action}", json=body, headers=drv)
            e = err(r, 403, "role_required")
            assert "state" not in r.text and "current" not in e, r.text


async def test_out_of_scope_and_missing_trips_answer_alike(
    client: httpx.AsyncClient,
    login: Login,
    session: AsyncSession,
    settings: Settings,
    world: World,
) -> None:
    xtrip = await _xingning_trip(client, session, settings, world)
    appr = await login("approver.qingxiu")
    seen = await client.post(f"{API}/trips/{xtrip['id']}/approve", json={}, headers=appr)
    missing = await client.post(f"{API}/trips/{10**12}/approve", json={}, headers=appr)
    assert seen.status_code == missing.status_code == 404
    assert seen.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert seen.json()["error"]["field"] == missing.json()["error"]["field"]


async def test_pooled_driver_stays_assignable(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    """The policy does not hide what a dispatcher may use: a driver of the unit that lends a
    pooled car can still be sent with that car."""
    trip = await approved_trip(client, login, world)
    xunit = await _org(session, "450102-03")
    pooled = await make_vehicle(session, xunit, shared_pool="city")
    own_driver = await make_driver(session, xunit, "C1")
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": pooled, "driver_id": own_driver},
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 201, r.text
