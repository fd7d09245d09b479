"""Registry API: happy paths, bad input (422/409 with the field), audit of changes."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Login

VEHICLE = {
    "plate": "桂AD99001",
    "vin": "LFV2A21K5A4000001",  # position 9: the check digit
    "category": "pool",
    "body_type": "sedan",
    "seats": 5,
    "energy": "bev",
    "nev_range_km": 500,
    "price_cny": "159000.00",
    "purchase_date": "2024-05-01",
    "depot": {"lat": 22.81, "lon": 108.37},
}


async def _unit(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> int:
    r = await client.get("/api/v1/orgs", params={"q": code, "kind": "unit"}, headers=headers)
    return next(o["id"] for o in r.json()["items"] if o["code"] == code)  # type: ignore[no-any-return]


async def test_vehicle_create_get_update_and_lifecycle_is_audited(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-03")
    r = await client.post("/api/v1/vehicles", json={**VEHICLE, "unit_id": unit}, headers=admin)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["depot"] == {"lat": 22.81, "lon": 108.37} and v["status"] == "in_service"

    r = await client.get(f"/api/v1/vehicles/{v['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["plate"] == "桂AD99001"

    r = await client.patch(
        f"/api/v1/vehicles/{v['id']}", json={"shared_pool": "county"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["shared_pool"] == "county"

    disp = await login("dispatcher.qingxiu")
    r = await client.post(
        f"/api/v1/vehicles/{v['id']}/status",
        json={"status": "under_repair", "reason": "刹车异响"},
        headers=disp,
    )
    assert r.status_code == 200 and r.json()["status"] == "under_repair"
    r = await client.post(
        f"/api/v1/vehicles/{v['id']}/status",
        json={"status": "sealed", "reason": "x节假日"},
        headers=disp,
    )
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "illegal_transition" and err["current"] == "under_repair"

    rows = (
        await session.execute(
            text(
                "SELECT action, actor, from_state, to_state, reason FROM audit_log"
                " WHERE entity = 'vehicle' AND entity_id = :id ORDER BY id"
            ),
            {"id": str(v["id"])},
        )
    ).all()
    assert [r.action for r in rows] == ["vehicle.create", "vehicle.update", "vehicle.status"]
    assert rows[-1].actor == "dispatcher.qingxiu"
    assert (rows[-1].from_state, rows[-1].to_state, rows[-1].reason) == (
        "in_service",
        "under_repair",
        "刹车异响",
    )


async def test_vehicle_bad_input_names_the_field(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-03")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"vin": "LFV2A21K0A400000I"}, 422, "vin"),  # I is not a VIN character
        ({"vin": "LFV2A21K0A4000001"}, 422, "vin"),  # check digit should be 5
        ({"vin": "LFV2A21K5A4000002"}, 422, "vin"),  # one character mistyped
        ({"seats": 0}, 422, "seats"),
        ({"depot": {"lat": 95, "lon": 108}}, 422, "depot.lat"),
        ({"energy": "ice"}, 422, "engine_l"),  # ice needs an engine size
        ({"colour": "red"}, 422, "colour"),  # unknown field
        ({"unit_id": 1}, 422, "unit_id"),  # region is not a unit
        ({"unit_id": 99999999}, 404, "unit_id"),
    ]
    for patch, status, field in cases:
        r = await client.post(
            "/api/v1/vehicles", json={**VEHICLE, "unit_id": unit, **patch}, headers=admin
        )
        assert r.status_code == status, (patch, r.text)
        assert r.json()["error"].get("field", "") == field, (patch, r.json())
    existing = (await client.get("/api/v1/vehicles", params={"limit": 1}, headers=admin)).json()
    dup = existing["items"][0]["plate"]
    r = await client.post(
        "/api/v1/vehicles", json={**VEHICLE, "unit_id": unit, "plate": dup}, headers=admin
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "plate"
    r = await client.get("/api/v1/vehicles/notanumber", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "vehicle_id"
    r = await client.get("/api/v1/vehicles", params={"limit": 10_000}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    # Ids go up to 2^53 - 1, the largest integer every JSON client holds exactly.
    r = await client.get("/api/v1/vehicles/9007199254740991", headers=admin)
    assert r.status_code == 404
    r = await client.get("/api/v1/vehicles/9007199254740992", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "vehicle_id"


async def test_vehicle_list_filters_and_paginates(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    r = await client.get(
        "/api/v1/vehicles", params={"body_type": "mpv", "limit": 3, "offset": 2}, headers=admin
    )
    page = r.json()
    assert r.status_code == 200 and page["limit"] == 3 and page["offset"] == 2
    assert len(page["items"]) == 3 and all(v["body_type"] == "mpv" for v in page["items"])
    assert page["total"] > 5
    r = await client.get(
        "/api/v1/vehicles", params={"q": page["items"][0]["plate"][2:]}, headers=admin
    )
    assert page["items"][0]["id"] in [v["id"] for v in r.json()["items"]]


async def test_driver_crud(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-03")
    body = {
        "name": "覃师傅",
        "licence_class": "B1",
        "licence_no": "450103199001011234",
        "phone": "13800000000",
        "unit_id": unit,
    }
    r = await client.post("/api/v1/drivers", json=body, headers=admin)
    assert r.status_code == 201, r.text
    d = r.json()
    r = await client.post("/api/v1/drivers", json=body, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["field"] == "licence_no"
    r = await client.patch(f"/api/v1/drivers/{d['id']}", json={"status": "on_leave"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "on_leave"
    r = await client.patch(
        f"/api/v1/drivers/{d['id']}", json={"licence_class": "Z9"}, headers=admin
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "licence_class"
    disp = await login("dispatcher.qingxiu")
    r = await client.get("/api/v1/drivers", params={"q": "覃师傅"}, headers=disp)
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == [d["id"]]
    r = await client.get(
        "/api/v1/drivers", headers=await login("dispatcher.xingning"), params={"q": "覃师傅"}
    )
    assert r.json()["total"] == 0


async def test_terminal_secret_is_returned_once_and_stored_hashed(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    from telematics.broker.credentials import verify_secret

    admin = await login("admin")
    r = await client.post(
        "/api/v1/terminals", json={"id": "TEST0001", "model": "BSJ-A6"}, headers=admin
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert secret and len(secret) >= 16
    stored = (
        await session.execute(text("SELECT secret_hash FROM terminals WHERE id='TEST0001'"))
    ).scalar_one()
    assert stored.startswith("$7$") and secret not in stored and verify_secret(stored, secret)
    r = await client.get("/api/v1/terminals/TEST0001", headers=admin)
    assert "secret" not in r.json()
    r = await client.patch(
        "/api/v1/terminals/TEST0001", json={"rotate_secret": True}, headers=admin
    )
    assert r.json()["secret"] and r.json()["secret"] != secret
    r = await client.post("/api/v1/terminals", json={"id": "TEST0001"}, headers=admin)
    assert r.status_code == 409
    taken = (await client.get("/api/v1/terminals", params={"limit": 1}, headers=admin)).json()
    vid = taken["items"][0]["vehicle_id"]
    r = await client.post(
        "/api/v1/terminals", json={"id": "TEST0002", "vehicle_id": vid}, headers=admin
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "vehicle_id"
    r = await client.post("/api/v1/terminals", json={"id": "bad id!"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "id"


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[108.2, 22.7], [108.5, 22.7], [108.5, 22.9], [108.2, 22.9], [108.2, 22.7]]],
}


async def test_geofence_geojson_in_and_out(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    r = await client.get("/api/v1/orgs", params={"q": "450103", "kind": "county"}, headers=admin)
    county = r.json()["items"][0]["id"]
    feature = {
        "type": "Feature",
        "geometry": SQUARE,
        "properties": {"name": "青秀区行政区域", "purpose": "allowed_area", "org_id": county},
    }
    r = await client.post("/api/v1/geofences", json=feature, headers=admin)
    assert r.status_code == 201, r.text
    g = r.json()
    assert g["type"] == "Feature" and g["geometry"]["type"] == "MultiPolygon"
    assert g["geometry"]["coordinates"][0][0][0] == [108.2, 22.7]
    r = await client.get("/api/v1/geofences", params={"purpose": "allowed_area"}, headers=admin)
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and g["id"] in [f["id"] for f in fc["features"]]

    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    bad = [
        ({**feature, "geometry": bowtie}, "geometry"),
        ({**feature, "geometry": {"type": "Point", "coordinates": [1, 2]}}, "geometry"),
        (
            {**feature, "properties": {**feature["properties"], "purpose": "speed_limit"}},
            "properties",
        ),
    ]
    for body, field in bad:
        r = await client.post("/api/v1/geofences", json=body, headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field, r.json()
    r = await client.patch(
        f"/api/v1/geofences/{g['id']}", json={"properties": {"active": False}}, headers=admin
    )
    assert r.status_code == 200 and r.json()["properties"]["active"] is False
    disp_other = await login("dispatcher.xingning")
    r = await client.get(f"/api/v1/geofences/{g['id']}", headers=disp_other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_org_tree_create_and_rules(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    r = await client.get("/api/v1/orgs", params={"kind": "county", "q": "450103"}, headers=admin)
    county = r.json()["items"][0]
    r = await client.post(
        "/api/v1/orgs",
        json={
            "kind": "unit",
            "code": "450103-99",
            "name": "青秀区测试局",
            "parent_id": county["id"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    unit = r.json()
    assert unit["path"] == f"{county['path']}.{unit['id']}"
    r = await client.post(
        "/api/v1/orgs",
        json={"kind": "city", "code": "X", "name": "x", "parent_id": county["id"]},
        headers=admin,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "parent_id"
    r = await client.post(
        "/api/v1/orgs",
        json={"kind": "unit", "code": "450103-99", "name": "y", "parent_id": county["id"]},
        headers=admin,
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "code"
    r = await client.get(
        "/api/v1/orgs", params={"under": county["id"], "limit": 500}, headers=admin
    )
    assert all(o["path"].startswith(county["path"]) for o in r.json()["items"])


async def test_user_admin_and_role_scope(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-02")
    body = {
        "username": "new.requester",
        "password": "long-enough-pw",
        "display_name": "新申请人",
        "org_id": unit,
        "roles": [{"role": "requester", "org_id": unit}],
    }
    r = await client.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/auth/login", json={"username": "new.requester", "password": "long-enough-pw"}
    )
    assert r.status_code == 200
    r = await client.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["field"] == "username"
    r = await client.post(
        "/api/v1/users", json={**body, "username": "x.y", "password": "short"}, headers=admin
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "password"


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    from web.app import create_app

    app = create_app(manage_engine=False)
    routes = {r.path for r in app.routes if getattr(r, "path", "").startswith("/api/v1/")}  # type: ignore[attr-defined]
    routes.discard("/api/v1/openapi.json")
    assert routes <= set(spec["paths"])
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path != "/api/v1/health" and path != "/api/v1/auth/login":
                assert "422" in op["responses"] or method == "get", (path, method)


async def test_values_the_database_cannot_hold_are_422_on_the_field(
    client: httpx.AsyncClient, login: Login
) -> None:
    """Found by fuzzing the OpenAPI schema: ids beyond bigint used to reach asyncpg (500)."""
    admin = await login("admin")
    huge = 2**70
    cases: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None, str]] = [
        ("GET", f"/api/v1/vehicles/{huge}", None, None, "vehicle_id"),
        ("GET", "/api/v1/vehicles", {"under": huge}, None, "under"),
        ("GET", "/api/v1/vehicles", {"offset": huge}, None, "offset"),
        ("GET", "/api/v1/orgs", {"under": huge}, None, "under"),
        ("GET", "/api/v1/positions/latest", {"offset": huge}, None, "offset"),
        ("GET", f"/api/v1/trips/{huge}/history", None, None, "trip_id"),
        ("GET", f"/api/v1/dispatch/proposals/{-huge}", None, None, "proposal_id"),
        ("GET", "/api/v1/exports/alerts.csv", {"under": huge}, None, "under"),
        (
            "POST",
            "/api/v1/service-records",
            None,
            {"done_on": "2026-10-05", "vehicle_id": -huge, "kind": "repair"},
            "vehicle_id",
        ),
        ("POST", "/api/v1/me/notifications/read", None, {"ids": [1, huge]}, "ids.1"),
        ("POST", f"/api/v1/trips/{huge}/settle", None, {"note": None}, "trip_id"),
    ]
    for method, url, params, body, field in cases:
        r = await client.request(method, url, params=params, json=body, headers=admin)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["error"].get("field") == field, (url, r.json())
    # A NUL character in a search string is refused by the database itself: 422, not 500.
    r = await client.get("/api/v1/vehicles", params={"q": "桂A\x00"}, headers=admin)
    assert r.status_code in (200, 422), r.text


async def test_vin_check_digit_is_checked(client: httpx.AsyncClient, login: Login) -> None:
    """The docs say the VIN is checked: a wrong check digit is a 422 naming it."""
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-03")
    r = await client.post(
        "/api/v1/vehicles",
        json={**VEHICLE, "unit_id": unit, "vin": "LFV2A21K0A4000001", "plate": "桂AD99002"},
        headers=admin,
    )
    assert r.status_code == 422, r.text
    err = r.json()["errors"][0]
    assert (err["code"], err["field"]) == ("vin_check_digit", "vin")
    assert "is 0, the other characters give 5" in err["message"]
    # An X check digit (remainder 10) is valid too.
    r = await client.post(
        "/api/v1/vehicles",
        json={**VEHICLE, "unit_id": unit, "vin": "LSVAA218XE2000002", "plate": "桂AD99003"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
