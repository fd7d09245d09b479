"""Approval chains as data: in-county, cross-city, emergency dispatch-first; delegate, escalate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.approvals.service import escalate_overdue
from tests.conftest import DEMO_PASSWORD, Login
from tests.dispatch.conftest import API, EventTap, World, make_vehicle, trip_body


async def _user(
    client: httpx.AsyncClient, login: Login, username: str, org_id: int, *roles: str
) -> int:
    r = await client.post(
        f"{API}/users",
        json={
            "username": username,
            "password": DEMO_PASSWORD,
            "display_name": username,
            "org_id": org_id,
            "roles": [{"role": role, "org_id": org_id} for role in roles],
        },
        headers=await login("admin"),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _submit(client: httpx.AsyncClient, login: Login, world: World, **kw: object) -> dict:  # type: ignore[type-arg]
    r = await client.post(
        f"{API}/trips",
        json={**trip_body(world, **kw), "submit": True},  # type: ignore[arg-type]
        headers=await login("requester.qingxiu"),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_cross_city_needs_the_city_platform_too(
    client: httpx.AsyncClient, login: Login, world: World, events: EventTap
) -> None:
    city_approver = await _user(client, login, "approver.nanning", world.city, "approver")
    trip = await _submit(client, login, world, dest=world.guilin)
    assert trip["kind"] == "cross_city" and trip["state"] == "submitted"
    tid = trip["id"]
    # The city approver cannot act on the unit step…
    r = await client.post(
        f"{API}/trips/{tid}/approve", json={}, headers=await login("approver.nanning")
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "out_of_scope"
    # …the unit head approves first, which opens the city step.
    r = await client.post(
        f"{API}/trips/{tid}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "approval_needed"
            and e["data"]["trip_id"] == tid
            and e["data"]["level"] == "city"
            and e["user_ids"] == [city_approver]
        )
    )
    r = await client.post(
        f"{API}/trips/{tid}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.status_code == 403  # the unit approver holds no city-level binding
    r = await client.post(
        f"{API}/trips/{tid}/approve", json={}, headers=await login("approver.nanning")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = await client.get(f"{API}/trips/{tid}/approvals", headers=await login("requester.qingxiu"))
    assert [(s["level"], s["state"]) for s in r.json()] == [
        ("unit", "approved"),
        ("city", "approved"),
    ]

    # Cross-county (same city) follows its own chain: unit, then county.
    trip = await _submit(client, login, world, dest=world.xingning)
    assert trip["kind"] == "cross_county"


async def test_emergency_dispatches_first_and_approves_after(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    trip = await _submit(client, login, world, urgency="emergency", start_in_h=0.1)
    assert trip["kind"] == "emergency" and trip["dispatch_first"] is True
    assert trip["state"] == "approved" and trip["approval_status"] == "pending"
    v = await make_vehicle(session, world.pool_unit)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 201, r.text
    # The approval follows while the trip runs.
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve",
        json={"comment": "补批"},
        headers=await login("approver.qingxiu"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "assigned" and r.json()["approval_status"] == "approved"

    # A post-hoc rejection before departure stops the trip and frees the vehicle.
    other = await _submit(client, login, world, urgency="emergency", start_in_h=30)
    r = await client.post(
        f"{API}/trips/{other['id']}/assign",
        json={"vehicle_id": v, "driver_id": world.driver_id},
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 201
    r = await client.post(
        f"{API}/trips/{other['id']}/reject",
        json={"reason": "不属于应急"},
        headers=await login("approver.qingxiu"),
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert r.json()["approval_status"] == "rejected"


async def test_reject_and_return_for_changes(
    client: httpx.AsyncClient, login: Login, world: World, events: EventTap
) -> None:
    appr = await login("approver.qingxiu")
    req = await login("requester.qingxiu")
    trip = await _submit(client, login, world)
    r = await client.post(f"{API}/trips/{trip['id']}/reject", json={}, headers=appr)
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    r = await client.post(
        f"{API}/trips/{trip['id']}/reject", json={"reason": "可视频会议"}, headers=appr
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert r.json()["state_reason"] == "可视频会议"
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "rejected"
            and e["user_ids"] == [world.users["requester.qingxiu"]]
        )
    )

    trip = await _submit(client, login, world)
    r = await client.post(
        f"{API}/trips/{trip['id']}/return", json={"reason": "请补充乘车人"}, headers=appr
    )
    assert r.status_code == 200 and r.json()["state"] == "draft"
    body = {**trip_body(world), "passenger_names": ["张伟", "李娜"], "submit": True}
    r = await client.put(f"{API}/trips/{trip['id']}", json=body, headers=req)
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    assert r.json()["approval_round"] == 2
    r = await client.post(f"{API}/trips/{trip['id']}/approve", json={}, headers=appr)
    assert r.status_code == 200 and r.json()["state"] == "approved"


async def test_requester_cannot_approve_own_request(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    await _user(client, login, "both.qingxiu", world.requester_unit, "requester", "approver")
    me = await login("both.qingxiu")
    r = await client.post(f"{API}/trips", json={**trip_body(world), "submit": True}, headers=me)
    assert r.status_code == 201
    r = await client.post(f"{API}/trips/{r.json()['id']}/approve", json={}, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_request"
    r = await client.get(f"{API}/approvals/inbox", headers=me)
    assert r.json()["total"] == 0


async def test_delegate_then_only_the_delegate_decides(
    client: httpx.AsyncClient, login: Login, world: World, events: EventTap
) -> None:
    deputy = await _user(client, login, "deputy.qingxiu", world.requester_unit, "approver")
    trip = await _submit(client, login, world)
    appr = await login("approver.qingxiu")
    r = await client.post(
        f"{API}/trips/{trip['id']}/delegate",
        json={"user_id": world.users["requester.qingxiu"]},
        headers=appr,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "user_id"
    r = await client.post(
        f"{API}/trips/{trip['id']}/delegate",
        json={"user_id": deputy, "reason": "出差"},
        headers=appr,
    )
    assert r.status_code == 200 and r.json()["assignee_id"] == deputy
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "approval_needed"
            and e["user_ids"] == [deputy]
        )
    )
    r = await client.post(f"{API}/trips/{trip['id']}/approve", json={}, headers=appr)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_assignee"
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("deputy.qingxiu")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"


async def test_overdue_step_escalates_one_level(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World, events: EventTap
) -> None:
    county_approver = await _user(
        client, login, "approver.qingxiu.county", world.county, "approver"
    )
    trip = await _submit(client, login, world)
    # Nothing is overdue yet.
    assert await escalate_overdue(session, datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(hours=5)  # the in-county step times out after 4 h
    assert await escalate_overdue(session, later) >= 1
    await session.commit()
    await events.wait_for(
        lambda e: (
            e["type"] == "notification"
            and e["data"]["kind"] == "approval_escalated"
            and e["data"]["trip_id"] == trip["id"]
            and county_approver in e["user_ids"]
        )
    )
    r = await client.get(
        f"{API}/trips/{trip['id']}/approvals", headers=await login("requester.qingxiu")
    )
    step = r.json()[0]
    assert step["level"] == "county" and step["escalations"] == 1 and step["state"] == "pending"
    audit = await session.execute(
        text(
            "SELECT actor, data->>'from_level', data->>'to_level' FROM audit_log"
            " WHERE entity = 'trip' AND entity_id = :t AND action = 'approval.escalate'"
        ),
        {"t": str(trip["id"])},
    )
    assert audit.one() == ("dispatch-worker", "unit", "county")
    # The unit approver no longer decides; the county platform does.
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.status_code == 403
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu.county")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"


async def test_chains_are_data_an_admin_edits(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    admin = await login("admin")
    # Qingxiu's own in-county chain: unit, then county platform.
    r = await client.put(
        f"{API}/approval-chains",
        json={
            "org_id": world.county,
            "kind": "in_county",
            "steps": [
                {"level": "unit", "timeout_hours": 2},
                {"level": "county", "timeout_hours": 2},
            ],
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    trip = await _submit(client, login, world)
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.json()["state"] == "submitted"  # a second step is now required
    r = await client.put(
        f"{API}/approval-chains",
        json={
            "org_id": None,
            "kind": "in_county",
            "steps": [{"level": "unit", "timeout_hours": 8}],
        },
        headers=await login("dispatcher.qingxiu"),
    )
    assert r.status_code == 403
