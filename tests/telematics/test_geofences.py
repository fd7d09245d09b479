"""Bounded geometry (issue 18 item 6): a cap on vertices and on request bodies, outlines
simplified for display, and an administrator who can delete a geofence (audited, scoped)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import get_settings
from tests.conftest import Login
from web.body_limit import BodySizeLimit

API = "/api/v1"


def circle(n: int, lon: float = 108.35, lat: float = 22.8, r_deg: float = 0.1) -> dict[str, Any]:
    """A closed ring of n distinct vertices (n + 1 positions), slightly jagged so that a
    display simplification has something to remove."""
    ring = []
    for i in range(n):
        a = 2 * math.pi * i / n
        rr = r_deg * (1 + 0.00001 * (i % 2))
        ring.append([round(lon + rr * math.cos(a), 7), round(lat + rr * math.sin(a), 7)])
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


async def _county(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> int:
    r = await client.get(f"{API}/orgs", params={"q": code, "kind": "county"}, headers=headers)
    return int(r.json()["items"][0]["id"])


def _feature(geometry: dict[str, Any], org_id: int, name: str = "青秀区边界") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"name": name, "purpose": "allowed_area", "org_id": org_id},
    }


async def test_vertices_are_capped_and_outlines_simplified_for_display(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    county = await _county(client, admin, "450103")
    most = get_settings().limits.geofence_max_vertices
    r = await client.post(f"{API}/geofences", json=_feature(circle(most), county), headers=admin)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"].startswith("geometry") and f"at most {most} vertices" in error["message"]

    r = await client.post(
        f"{API}/geofences", json=_feature(circle(most - 1), county), headers=admin
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert len(r.json()["geometry"]["coordinates"][0][0]) == most

    r = await client.get(f"{API}/geofences", params={"org_id": county}, headers=admin)
    shown = next(f for f in r.json()["features"] if f["id"] == gid)
    assert shown["properties"]["simplified"] is True
    outline = shown["geometry"]["coordinates"][0][0]
    assert 16 <= len(outline) < most // 10, len(outline)  # still a circle, far fewer points
    r = await client.get(
        f"{API}/geofences", params={"org_id": county, "geometry": "full"}, headers=admin
    )
    full = next(f for f in r.json()["features"] if f["id"] == gid)
    assert full["properties"]["simplified"] is False
    assert len(full["geometry"]["coordinates"][0][0]) == most
    r = await client.get(f"{API}/geofences/{gid}", headers=admin)
    assert len(r.json()["geometry"]["coordinates"][0][0]) == most


async def test_request_bodies_are_capped_with_the_limit_in_the_answer(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    county = await _county(client, admin, "450103")
    limit = get_settings().api.max_body_bytes
    big = orjson.dumps(_feature(circle(60_000), county))  # the 26.8 MB probe, scaled down
    assert len(big) > limit
    headers = {**admin, "content-type": "application/json"}
    r = await client.post(f"{API}/geofences", content=big, headers=headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    assert f"{limit:,}" in r.json()["error"]["message"]
    assert r.json()["error"]["limit_bytes"] == limit

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65_536):
            yield big[i : i + 65_536]

    r = await client.post(f"{API}/geofences", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # File imports get their own, larger limit.
    middleware = BodySizeLimit(client, max_bytes=10, max_import_bytes=1000)  # type: ignore[arg-type]
    assert middleware.limit_for("/api/v1/vehicles/import") == 1000
    assert middleware.limit_for("/api/v1/vehicles") == 10


async def test_an_administrator_deletes_a_geofence_in_scope(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    admin = await login("admin")
    qingxiu = await _county(client, admin, "450103")
    xingning = await _county(client, admin, "450102")
    r = await client.post(f"{API}/geofences", json=_feature(circle(8), qingxiu), headers=admin)
    gid = r.json()["id"]
    r = await client.post(
        f"{API}/users",
        json={
            "username": "admin.xingning",
            "password": "county-admin-1",
            "display_name": "兴宁区管理员",
            "org_id": xingning,
            "roles": [{"role": "admin", "org_id": xingning}],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    for who in ("dispatcher.qingxiu", "auditor"):  # the role first, before any lookup
        r = await client.delete(f"{API}/geofences/{gid}", headers=await login(who))
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_required", r.text
    # An admin of another county does not see it: the answer a missing one gets.
    neighbour = await login("admin.xingning", "county-admin-1")
    r = await client.delete(f"{API}/geofences/{gid}", headers=neighbour)
    missing = await client.delete(f"{API}/geofences/{10**12}", headers=neighbour)
    assert r.status_code == missing.status_code == 404
    assert r.json()["error"]["field"] == missing.json()["error"]["field"] == "id"

    r = await client.delete(f"{API}/geofences/{gid}", headers=admin)
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"{API}/geofences/{gid}", headers=admin)).status_code == 404
    assert (await client.delete(f"{API}/geofences/{gid}", headers=admin)).status_code == 404
    entry = (
        await session.execute(
            text(
                "SELECT actor, data FROM audit_log WHERE action = 'geofence.delete'"
                " AND entity = 'geofence' AND entity_id = :id"
            ),
            {"id": str(gid)},
        )
    ).one()
    assert entry.actor == "admin"
    assert entry.data["name"] == "青秀区边界" and entry.data["vertices"] == 9
