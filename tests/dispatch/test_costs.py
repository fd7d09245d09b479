"""Costs, service records and reminders, ratings, the cost-per-km report, standards as data,
and the optimizer seam (planning input, batch of proposals through the manual checks)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.costs.service import remind_due
from fleet.clock import local_today
from tests.conftest import Login
from tests.dispatch.conftest import (
    API,
    EventTap,
    World,
    approved_trip,
    make_driver,
    make_vehicle,
    trip_body,
)

SHANGHAI = timedelta(hours=8)


async def _completed_trip(
    client: httpx.AsyncClient, login: Login, world: World, vehicle: int, km: float, **kw: Any
) -> dict[str, Any]:
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    trip = await approved_trip(client, login, world, **kw)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": vehicle, "driver_id": world.driver_id},
        headers=disp,
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    await client.post(f"{API}/assignments/{aid}/accept", headers=drv)
    await client.post(f"{API}/assignments/{aid}/depart", json={"odometer_km": 1000}, headers=drv)
    r = await client.post(
        f"{API}/assignments/{aid}/complete",
        json={"odometer_km": 1000 + km, "tolls_cny": "20.00", "energy_cny": "30.00"},
        headers=drv,
    )
    assert r.status_code == 200, r.text
    return trip


async def test_costs_and_cost_per_km_report(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    v = await make_vehicle(session, world.pool_unit, energy="bev", nev_range_km=400)
    t1 = await _completed_trip(client, login, world, v, 40, start_in_h=24)
    await _completed_trip(client, login, world, v, 60, start_in_h=48)
    today = (datetime.now(UTC) + SHANGHAI).date()
    r = await client.post(
        f"{API}/costs",
        json={
            "vehicle_id": v,
            "kind": "repair",
            "amount_cny": "150.00",
            "occurred_on": today.isoformat(),
        },
        headers=disp,
    )
    assert r.status_code == 201, r.text
    # Charging, not fuel: the vehicle is a BEV.
    r = await client.get(f"{API}/costs", params={"trip_id": t1["id"]}, headers=disp)
    assert sorted(c["kind"] for c in r.json()["items"]) == ["charging", "toll"]
    r = await client.get(f"{API}/vehicles/{v}/cost-summary", headers=disp)
    s = r.json()
    assert s["km"] == 100 and s["trips"] == 2 and float(s["total_cny"]) == 250.0
    assert float(s["by_kind"]["repair"]) == 150

    month = today.strftime("%Y-%m")
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": month, "month_to": month, "under": world.pool_unit},
        headers=disp,
    )
    assert r.status_code == 200, r.text
    rows = r.json()
    assert len(rows) == 1
    row = rows[0]
    assert row["unit_id"] == world.pool_unit and row["month"] == month
    assert row["trips"] == 2 and row["km"] == 100 and float(row["cost_cny"]) == 250
    assert float(row["cost_per_km"]) == 2.5
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": month, "month_to": month, "under": world.pool_unit, "format": "csv"},
        headers=disp,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))  # Excel's BOM
    assert table[0][:3] == ["unit_id", "unit_name", "month"] and table[1][6] == "2.50"
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": month, "month_to": "2020-01"},
        headers=disp,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "month_to"
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": month, "month_to": month},
        headers=await login("requester.qingxiu"),
    )
    assert r.status_code == 403
    # Settled trips' costs are closed.
    assert (
        await client.post(f"{API}/trips/{t1['id']}/settle", json={}, headers=disp)
    ).status_code == 200
    r = await client.post(
        f"{API}/costs",
        json={
            "vehicle_id": v,
            "trip_id": t1["id"],
            "kind": "parking",
            "amount_cny": "5.00",
            "occurred_on": today.isoformat(),
        },
        headers=disp,
    )
    assert r.status_code == 409 and r.json()["error"]["current"] == "settled"


async def test_service_records_due_dates_and_reminders(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World, events: EventTap
) -> None:
    disp = await login("dispatcher.qingxiu")
    v = await make_vehicle(session, world.pool_unit)
    today = local_today()  # due dates are Shanghai days (date.today() is UTC's)
    r = await client.post(
        f"{API}/service-records",
        json={
            "vehicle_id": v,
            "kind": "insurance",
            "done_on": (today - timedelta(days=350)).isoformat(),
            "due_on": (today + timedelta(days=15)).isoformat(),
            "cost_cny": "4200.00",
            "vendor": "人保财险",
        },
        headers=disp,
    )
    assert r.status_code == 201, r.text
    assert r.json()["cost_id"] is not None
    r = await client.post(
        f"{API}/service-records",
        json={
            "vehicle_id": v,
            "kind": "inspection",
            "done_on": today.isoformat(),
            "due_on": (today - timedelta(days=1)).isoformat(),
        },
        headers=disp,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "due_on"
    r = await client.get(f"{API}/service-records/due", params={"within_days": 30}, headers=disp)
    due = [d for d in r.json() if d["vehicle_id"] == v]
    assert [(d["kind"], d["days_left"]) for d in due] == [("insurance", 15)]

    assert await remind_due(session, within_days=30) >= 1
    await session.commit()
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "insurance_due"
            and e["data"]["vehicle_id"] == v
            and world.users["dispatcher.qingxiu"] in e["user_ids"]
            and world.users["admin"] in e["user_ids"]
        )
    )
    # Once per record.
    again = await remind_due(session, within_days=30)
    assert again == 0


async def test_ratings(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    req = await login("requester.qingxiu")
    trip = await approved_trip(client, login, world)
    r = await client.post(f"{API}/trips/{trip['id']}/ratings", json={"score": 4}, headers=req)
    assert r.status_code == 409 and r.json()["error"]["current"] == "approved"
    v = await make_vehicle(session, world.pool_unit)
    done = await _completed_trip(client, login, world, v, 10, start_in_h=72)
    r = await client.post(f"{API}/trips/{done['id']}/ratings", json={"score": 6}, headers=req)
    assert r.status_code == 422 and r.json()["error"]["field"] == "score"
    r = await client.post(
        f"{API}/trips/{done['id']}/ratings", json={"score": 4, "comment": "司机很专业"}, headers=req
    )
    assert r.status_code == 201
    r = await client.post(f"{API}/trips/{done['id']}/ratings", json={"score": 5}, headers=req)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_rated"
    r = await client.post(
        f"{API}/trips/{done['id']}/ratings",
        json={"score": 5},
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_passenger"
    r = await client.get(f"{API}/trips/{done['id']}/ratings", headers=await login("auditor"))
    assert [x["score"] for x in r.json()] == [4]


async def test_standards_are_data_the_admin_edits(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    admin = await login("admin")
    req = await login("requester.qingxiu")
    r = await client.get(f"{API}/standards/usage", headers=req)
    general = {
        (s["min_passengers"], s["max_passengers"]): s for s in r.json() if s["nature"] is None
    }
    assert general[(1, 4)]["body_types"] == ["sedan", "suv"]
    assert general[(20, None)]["body_types"] == ["bus"]
    # Reception trips of 1–4 may also use an MPV.
    r = await client.post(
        f"{API}/standards/usage",
        json={
            "nature": "reception",
            "min_passengers": 1,
            "max_passengers": 7,
            "body_types": ["sedan", "mpv"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/trips", json={**trip_body(world), "nature": "reception"}, headers=req
    )
    assert r.json()["allowed_body_types"] == ["sedan", "mpv"]
    r = await client.post(
        f"{API}/standards/usage",
        json={"min_passengers": 5, "max_passengers": 2, "body_types": ["mpv"]},
        headers=admin,
    )
    assert r.status_code == 422

    r = await client.get(f"{API}/standards/provisioning", headers=admin)
    caps = {(s["category"], s["body_type"]): s for s in r.json()}
    assert float(caps[("pool", "sedan")]["max_price_cny"]) == 180000
    assert float(caps[("pool", "sedan")]["max_engine_l"]) == 1.8
    assert float(caps[("courier", None)]["max_price_cny"]) == 120000
    assert float(caps[("courier", None)]["max_engine_l"]) == 1.6
    r = await client.put(
        f"{API}/standards/provisioning",
        json={
            "category": "pool",
            "body_type": "sedan",
            "max_price_cny": "100000.00",
            "max_engine_l": "1.4",
        },
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["id"] == caps[("pool", "sedan")]["id"]
    r = await client.get(f"{API}/standards/provisioning/violations", headers=admin)
    assert r.status_code == 200 and r.json()["total"] > 0
    assert all(v["category"] == "pool" or v["category"] == "courier" for v in r.json()["items"])


async def test_optimizer_seam(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    a = await approved_trip(client, login, world, start_in_h=100)
    b = await approved_trip(client, login, world, start_in_h=101)
    r = await client.get(f"{API}/dispatch/planning-input", headers=disp)
    assert r.status_code == 200
    data = r.json()
    ids = {t["id"] for t in data["requests"]}
    assert {a["id"], b["id"]} <= ids
    v = await make_vehicle(session, world.pool_unit)
    d2 = await make_driver(session, world.pool_unit, "C1")
    r = await client.get(f"{API}/dispatch/planning-input", headers=disp)
    assert v in {x["id"] for x in r.json()["vehicles"]}
    assert d2 in {x["id"] for x in r.json()["drivers"]}
    # Two proposals for one vehicle at overlapping times: the second is refused, the first stays.
    r = await client.post(
        f"{API}/dispatch/assignments",
        json={
            "items": [
                {"trip_id": a["id"], "vehicle_id": v, "driver_id": world.driver_id},
                {"trip_id": b["id"], "vehicle_id": v, "driver_id": d2},
            ]
        },
        headers=disp,
    )
    assert r.status_code == 200, r.text
    res = r.json()
    assert res[0]["ok"] is True and res[1]["ok"] is False
    assert res[1]["error"]["code"] == "vehicle_double_booked"
    r = await client.get(f"{API}/trips/{a['id']}/assignments", headers=disp)
    assert r.json()[0]["source"] == "optimizer"
    r = await client.get(f"{API}/trips/{b['id']}", headers=disp)
    assert r.json()["state"] == "approved"
