"""The approval chain is chosen by the county the map shows, and everyone can see it.

The base map names a clicked county from its drawn borders; the server decides by the same
borders in PostGIS (containment), with the nearest county seat only for points outside them.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Login
from tests.dispatch.conftest import API, World, trip_body

# Inside 青秀区 on the drawn map, ~4 km from its border, but nearer to 邕宁区's seat than to
# 青秀区's: the nearest-seat rule filed it as cross-county.
QINGXIU_EAST = (22.7224, 108.6577)
XINGNING_INSIDE = (22.9000, 108.4000)  # inside 兴宁区, 3.5 km from its border
GUANGZHOU = (23.1291, 113.2644)  # outside Guangxi: no border covers it


async def _file(client: httpx.AsyncClient, login: Login, world: World, **kw: Any) -> Any:
    r = await client.post(
        f"{API}/trips",
        json={**trip_body(world, **kw), "submit": True},
        headers=await login("requester.qingxiu"),
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_point_inside_qingxiu_is_in_county(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    trip = await _file(client, login, world, dest=QINGXIU_EAST)
    assert trip["kind"] == "in_county", trip["kind"]
    assert trip["destination_org_id"] == world.county
    # One level: the unit approver's decision approves it (no county step left waiting).
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text


async def test_other_county_and_outside_guangxi(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    trip = await _file(client, login, world, dest=XINGNING_INSIDE)
    assert trip["kind"] == "cross_county"
    # Outside every border the nearest seat decides (a county of another city here).
    trip = await _file(client, login, world, dest=GUANGZHOU)
    assert trip["kind"] == "cross_city"
    assert trip["destination_org_id"] is not None


def _ids_in(value: Any, path: str = "") -> list[str]:
    """Keys naming a row id anywhere in the payload (the view shows names, not ids)."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("_id") or k.endswith("_ids") or k == "id":
                found.append(f"{path}.{k}")
            found += _ids_in(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _ids_in(v, f"{path}[{i}]")
    return found


async def test_the_chain_is_visible_to_requester_and_approver(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    req, appr = await login("requester.qingxiu"), await login("approver.qingxiu")
    trip = await _file(client, login, world, dest=XINGNING_INSIDE)
    tid = trip["id"]
    url = f"{API}/trips/{tid}/approval-chain"
    r = await client.get(url, headers=req)
    assert r.status_code == 200, r.text
    chain = r.json()
    assert _ids_in(chain) == [".trip_id"]
    assert chain["kind"] == "cross_county" and chain["destination_county"] == "兴宁区"
    assert chain["unit"] == "青秀区人民政府办公室"
    assert (chain["current_seq"], chain["current_level"]) == (1, "unit")
    unit_level, county_level = chain["levels"]
    assert unit_level["state"] == "pending" and unit_level["current"]
    assert unit_level["scope"] == "青秀区人民政府办公室"
    assert unit_level["deciders"] == [{"name": "青秀区政府办审批人", "org": "青秀区人民政府办公室"}]
    # The demo has no county approver: the view says so instead of waiting in silence.
    assert county_level["state"] == "waiting" and county_level["scope"] == "青秀区"
    assert county_level["deciders"] == [] and county_level["deciders_total"] == 0
    # The approver reads the same chain.
    r = await client.get(url, headers=appr)
    assert r.status_code == 200 and r.json() == chain
    # The inbox names the requester (the table showed a bare id).
    r = await client.get(f"{API}/approvals/inbox", headers=appr)
    item = next(i for i in r.json()["items"] if i["trip"]["id"] == tid)
    assert item["requester"] == "青秀区政府办申请人"
    # Someone without the trip in scope does not: to them it does not exist.
    r = await client.get(url, headers=await login("dispatcher.xingning"))
    assert r.status_code == 404

    r = await client.post(f"{API}/trips/{tid}/approve", json={"comment": "同意"}, headers=appr)
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    chain = (await client.get(url, headers=req)).json()
    unit_level, county_level = chain["levels"]
    assert unit_level["state"] == "approved" and unit_level["comment"] == "同意"
    assert unit_level["decided_by"] == {"name": "青秀区政府办审批人", "org": "青秀区人民政府办公室"}
    assert (chain["current_seq"], chain["current_level"]) == (2, "county")
    assert county_level["current"] and county_level["due_at"] is not None
    # The requester is told where it waits now, and (with nobody able to decide) so are admins.
    r = await client.get(f"{API}/me/notifications", params={"unread": True}, headers=req)
    kinds = {n["kind"] for n in r.json()["items"] if n["data"].get("trip_id") == tid}
    assert {"approval_next_level", "approval_no_decider"} <= kinds
    r = await client.get(f"{API}/me/notifications", headers=await login("admin"))
    notes = [n for n in r.json()["items"] if n["data"].get("trip_id") == tid]
    assert [n["kind"] for n in notes] == ["approval_no_decider"]
    assert "县（区）平台" in notes[0]["message"]

    # A county approver appears as the decider of the county level once bound.
    r = await client.post(
        f"{API}/users",
        json={
            "username": "approver.qingxiu.platform",
            "password": "test-password-1",
            "display_name": "青秀区平台审批人",
            "org_id": world.county,
            "roles": [{"role": "approver", "org_id": world.county}],
        },
        headers=await login("admin"),
    )
    assert r.status_code == 201, r.text
    chain = (await client.get(url, headers=req)).json()
    assert chain["levels"][1]["deciders"] == [{"name": "青秀区平台审批人", "org": "青秀区"}]


async def test_a_draft_shows_the_levels_it_will_need(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    req = await login("requester.qingxiu")
    r = await client.post(f"{API}/trips", json=trip_body(world, dest=QINGXIU_EAST), headers=req)
    assert r.status_code == 201, r.text
    chain = (await client.get(f"{API}/trips/{r.json()['id']}/approval-chain", headers=req)).json()
    assert chain["round"] == 0 and chain["current_level"] is None
    assert [(lv["level"], lv["state"]) for lv in chain["levels"]] == [("unit", "planned")]
    assert chain["levels"][0]["deciders"][0]["name"] == "青秀区政府办审批人"
