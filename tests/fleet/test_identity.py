"""Login, tokens, role and org-scope checks."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import Settings
from fleet.errors import FleetError
from fleet.identity.security import issue_token
from tests.conftest import Login, bearer, make_user


async def test_login_returns_token_and_me(client: httpx.AsyncClient, login: Login) -> None:
    headers = await login("dispatcher.qingxiu")
    r = await client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 200
    me = r.json()
    assert me["username"] == "dispatcher.qingxiu"
    assert [b["role"] for b in me["roles"]] == ["dispatcher"]
    assert me["roles"][0]["org_name"] == "青秀区"


async def test_wrong_password_and_unknown_user_are_401(client: httpx.AsyncClient) -> None:
    for body in ({"username": "admin", "password": "nope"}, {"username": "ghost", "password": "x"}):
        r = await client.post("/api/v1/auth/login", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "bad_credentials"


async def test_missing_expired_and_forged_tokens_are_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await client.get("/api/v1/vehicles")
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_missing"

    expired = issue_token(settings.auth, 1, ttl_s=-10).access_token
    r = await client.get("/api/v1/vehicles", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"

    forged = jwt.encode(
        {"sub": "1", "exp": int(time.time()) + 600, "iss": "fleet"},
        "not-the-secret" * 4,
        algorithm="HS256",
    )
    r = await client.get("/api/v1/vehicles", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"

    none_alg = jwt.encode(
        {"sub": "1", "exp": int(time.time()) + 600, "iss": "fleet"}, None, algorithm="none"
    )
    r = await client.get("/api/v1/vehicles", headers={"Authorization": f"Bearer {none_alg}"})
    assert r.status_code == 401


async def _first_vehicle_in(client: httpx.AsyncClient, headers: dict[str, str], org: int) -> dict:  # type: ignore[type-arg]
    r = await client.get("/api/v1/vehicles", params={"under": org, "limit": 1}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"][0]  # type: ignore[no-any-return]


async def _org_id(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> int:
    r = await client.get("/api/v1/orgs", params={"q": code}, headers=headers)
    return next(o["id"] for o in r.json()["items"] if o["code"] == code)  # type: ignore[no-any-return]


async def test_county_dispatcher_cannot_read_or_change_other_county(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    qingxiu = await login("dispatcher.qingxiu")
    xingning_org = await _org_id(client, admin, "450102")
    qingxiu_org = await _org_id(client, admin, "450103")
    other = await _first_vehicle_in(client, admin, xingning_org)
    own = await _first_vehicle_in(client, admin, qingxiu_org)

    # Another county's vehicle is answered as a missing one; a pooled one it may see (and
    # send) but not change.
    r = await client.get(f"/api/v1/vehicles/{other['id']}", headers=qingxiu)
    if other["shared_pool"] == "none":
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    refused = 404 if other["shared_pool"] == "none" else 403
    r = await client.patch(f"/api/v1/vehicles/{other['id']}", json={"seats": 5}, headers=qingxiu)
    assert r.status_code == refused
    r = await client.post(
        f"/api/v1/vehicles/{other['id']}/status",
        json={"status": "under_repair", "reason": "test"},
        headers=qingxiu,
    )
    assert r.status_code == refused

    # the list shows only own county (plus pools shared with it, none from other counties)
    r = await client.get("/api/v1/vehicles", params={"limit": 500}, headers=qingxiu)
    ids = {v["id"] for v in r.json()["items"]}
    assert own["id"] in ids
    r2 = await client.get(
        "/api/v1/vehicles", params={"under": xingning_org, "limit": 500}, headers=qingxiu
    )
    assert all(v["shared_pool"] != "none" for v in r2.json()["items"])
    assert all(v["shared_pool"] != "county" for v in r2.json()["items"])

    # and its own county's vehicle it can change
    r = await client.patch(
        f"/api/v1/vehicles/{own['id']}", json={"seats": own["seats"]}, headers=qingxiu
    )
    assert r.status_code == 200


async def test_city_pool_is_visible_to_county_dispatchers_of_that_city(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    nanning = await _org_id(client, admin, "450100")
    r = await client.get(
        "/api/v1/vehicles",
        params={"under": nanning, "shared_pool": "city", "limit": 5},
        headers=admin,
    )
    pooled = r.json()["items"]
    assert pooled, "seed should put some city-pool vehicles in Nanning"
    qingxiu = await login("dispatcher.qingxiu")
    r = await client.get(f"/api/v1/vehicles/{pooled[0]['id']}", headers=qingxiu)
    assert r.status_code == 200
    # ... but lending is not owning: no edits
    r = await client.patch(
        f"/api/v1/vehicles/{pooled[0]['id']}", json={"seats": 5}, headers=qingxiu
    )
    assert r.status_code == 403


async def test_auditor_reads_everything_and_writes_nothing(
    client: httpx.AsyncClient, login: Login
) -> None:
    auditor = await login("auditor")
    r = await client.get("/api/v1/vehicles", params={"limit": 1}, headers=auditor)
    assert r.status_code == 200 and r.json()["total"] > 0
    vid = r.json()["items"][0]["id"]
    for method, url, body in (
        ("PATCH", f"/api/v1/vehicles/{vid}", {"seats": 5}),
        ("POST", f"/api/v1/vehicles/{vid}/status", {"status": "sealed", "reason": "holiday"}),
        ("POST", "/api/v1/orgs", {"kind": "unit", "code": "X-1", "name": "x", "parent_id": 1}),
        (
            "POST",
            "/api/v1/drivers",
            {"name": "x", "licence_class": "C1", "licence_no": "123456789", "unit_id": 1},
        ),
    ):
        r = await client.request(method, url, json=body, headers=auditor)
        assert r.status_code == 403, (url, r.text)


async def test_system_auditor_sees_only_its_vertical_system(
    client: httpx.AsyncClient, login: Login
) -> None:
    ga = await login("auditor.ga")
    r = await client.get("/api/v1/vehicles", params={"limit": 500}, headers=ga)
    assert r.status_code == 200 and r.json()["total"] > 0
    unit_ids = {v["unit_id"] for v in r.json()["items"]}
    admin = await login("admin")
    for uid in list(unit_ids)[:10]:
        org = (await client.get(f"/api/v1/orgs/{uid}", headers=admin)).json()
        assert org["name"].endswith("公安局")
        assert org["system_id"] is not None


async def test_requester_cannot_list_vehicles(client: httpx.AsyncClient, login: Login) -> None:
    r = await client.get("/api/v1/vehicles", headers=await login("requester.qingxiu"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"


async def test_admin_cannot_lock_themselves_out_and_the_last_region_admin_stays(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, settings: Settings
) -> None:
    admin = await login("admin")
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    region = me["roles"][0]["org_id"]
    r = await client.patch(f"/api/v1/users/{me['id']}", json={"roles": []}, headers=admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_admin_role", r.text
    r = await client.patch(
        f"/api/v1/users/{me['id']}",
        json={"roles": [{"role": "auditor", "org_id": region}]},
        headers=admin,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_admin_role"
    r = await client.patch(f"/api/v1/users/{me['id']}", json={"active": False}, headers=admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_account"
    # Adding a role to oneself keeps the admin binding: allowed.
    r = await client.patch(
        f"/api/v1/users/{me['id']}",
        json={
            "roles": [{"role": "admin", "org_id": region}, {"role": "auditor", "org_id": region}]
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text

    # A second region admin may remove the first (one remains) ...
    second = await make_user(session, "admin.two", "450000", (("admin", "450000"),))
    r = await client.patch(
        f"/api/v1/users/{me['id']}", json={"roles": []}, headers=bearer(settings, second)
    )
    assert r.status_code == 200, r.text
    # ... and the last active region-level admin binding cannot be removed by anyone: a
    # maintenance actor holding a region admin binding but no user of its own tries.
    from fleet.identity import schemas, users
    from fleet.identity.principal import Principal

    actor = Principal(user_id=0, username="maintenance", org_id=region, bindings={"admin": ("1",)})
    for patch in (schemas.UserPatch(roles=[]), schemas.UserPatch(active=False)):
        with pytest.raises(FleetError) as info:
            await users.update_user(session, actor, second, patch)
        assert info.value.status == 409 and info.value.code == "last_admin"


async def test_county_admin_cannot_manage_a_user_holding_roles_beyond_the_county(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, settings: Settings
) -> None:
    """A user of a county unit who is also bound higher up (here a region auditor) is not the
    county admin's to reset, deactivate or re-role: that would hand over the higher binding."""
    county_admin = bearer(
        settings, await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    )
    big = await make_user(
        session, "aud.qx", "450103-02", (("auditor", "450000"), ("requester", "450103-02"))
    )
    for patch in ({"password": "a-new-password-1"}, {"active": False}, {"roles": []}):
        r = await client.patch(f"/api/v1/users/{big}", json=patch, headers=county_admin)
        assert r.status_code == 403 and r.json()["error"]["code"] == "out_of_scope", r.text
    r = await client.get(f"/api/v1/users/{big}", headers=county_admin)
    assert r.status_code == 200
    # A user of another county is not visible at all: the same answer as a missing one.
    other = await make_user(session, "req.xn", "450102-03", (("requester", "450102-03"),))
    a = await client.patch(f"/api/v1/users/{other}", json={"active": False}, headers=county_admin)
    b = await client.patch(f"/api/v1/users/{10**12}", json={"active": False}, headers=county_admin)
    assert a.status_code == b.status_code == 404
    assert a.json()["error"]["code"] == b.json()["error"]["code"] == "not_found"
