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
XINGNING_INSIDE = (22.8578, 108.3120)  # well inside 兴宁区
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
