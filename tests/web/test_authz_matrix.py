"""Role × endpoint × foreign-scope object, for every write route and every by-id read of the
app (issue 18 items 2-3). The tables (tests/web/authz_cases.py) are checked against the app's
own operations: a new write route, or a new GET route with a path parameter, fails this test
until it is added with the refusals it must give — so a new endpoint without scope checks is
noticed.

Callers work in 青秀区 (450103); the foreign objects belong to 兴宁区 (450102), a county of the
same city. The policy (docs/architecture.md, "Who sees what"): a role that may never act gets
403 `role_required` before anything is looked up; an object the caller cannot see gets the
answer a missing one gets (404 `not_found`, same field); what they see but may not change
gets 403.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import Settings
from telematics.broker.credentials import hash_secret
from tests.conftest import bearer, make_user
from tests.web.authz_cases import (
    MISSING,
    MISSING_TERMINAL,
    NO_OBJECT,
    NOT_AN_ID,
    READS,
    WRITES,
    Case,
    trip_body,
)

API = "/api/v1"


def _api_routes(methods: set[str]) -> set[tuple[str, str]]:
    """(method, path) of every API operation the app serves, from its OpenAPI document (the
    API's routes are all described there: test_openapi_describes_every_route)."""
    from web.app import create_app

    out = set()
    for path, ops in create_app().openapi()["paths"].items():
        for method in ops:
            if method.upper() in methods and path.startswith(API):
                out.add((method.upper(), path.removeprefix(API)))
    return out


def test_every_write_route_is_in_the_table() -> None:
    routes = _api_routes({"POST", "PUT", "PATCH", "DELETE"})
    missing = routes - WRITES.keys() - NO_OBJECT.keys()
    assert not missing, f"write routes without scope cases in this table: {sorted(missing)}"
    assert not WRITES.keys() - routes, "cases for routes that no longer exist"


def test_every_by_id_read_is_in_the_table() -> None:
    routes = {p for m, p in _api_routes({"GET"}) if "{" in p}
    missing = routes - READS.keys() - NOT_AN_ID.keys()
    assert not missing, f"by-id reads without cases in this table: {sorted(missing)}"
    assert not READS.keys() - routes, "cases for routes that no longer exist"


# ---- the world -----------------------------------------------------------------------------


async def _one(session: AsyncSession, sql: str, **params: Any) -> Any:
    return (await session.execute(text(sql), params)).scalar_one()


async def _vehicle(session: AsyncSession, unit: int, plate: str, pool: str = "none") -> int:
    return int(
        await _one(
            session,
            "INSERT INTO vehicles (plate, vin, category, body_type, seats, energy, engine_l,"
            " price_cny, purchase_date, unit_id, depot, shared_pool) VALUES (:p, :vin, 'pool',"
            " 'sedan', 5, 'ice', 1.5, 150000, '2024-01-01', :u,"
            " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), :pool) RETURNING id",
            p=plate,
            vin=f"LAUTHZ{abs(hash(plate)) % 10**11:011d}",
            u=unit,
            pool=pool,
        )
    )


@pytest.fixture
async def world(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Object ids by name (x…: 兴宁's) and callers' headers."""
    org = {
        code: int(await _one(session, "SELECT id FROM orgs WHERE code = :c", c=code))
        for code in ("450103", "450103-02", "450103-03", "450102", "450102-03", "SYS-GA")
    }
    users = {
        name: int(await _one(session, "SELECT id FROM users WHERE username = :u", u=name))
        for name in (
            "dispatcher.qingxiu",
            "approver.qingxiu",
            "requester.qingxiu",
            "driver.qingxiu",
            "auditor",
        )
    }
    county_admin = await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    xuser = await make_user(session, "req.xn", "450102-03", (("requester", "450102-03"),))
    big_user = await make_user(
        session, "aud.qx", "450103-02", (("auditor", "450000"), ("requester", "450103-02"))
    )
    headers = {
        "disp": bearer(settings, users["dispatcher.qingxiu"]),
        "approver": bearer(settings, users["approver.qingxiu"]),
        "requester": bearer(settings, users["requester.qingxiu"]),
        "driver": bearer(settings, users["driver.qingxiu"]),
        "auditor": bearer(settings, users["auditor"]),
        "county_admin": bearer(settings, county_admin),
        "xuser": bearer(settings, xuser),
    }
    vehicle = await _vehicle(session, org["450103-03"], "桂A8Z001")
    xvehicle = await _vehicle(session, org["450102-03"], "桂A8Z002")
    pooled = await _vehicle(session, org["450102-03"], "桂A8Z003", pool="city")
    driver = int(
        await _one(session, "SELECT id FROM drivers WHERE user_id = :u", u=users["driver.qingxiu"])
    )
    await session.execute(
        text(
            "UPDATE drivers SET licence_class = 'A1', status = 'active', licence_expires = NULL"
            " WHERE id = :d"
        ),
        {"d": driver},
    )
    xdriver = int(
        await _one(
            session,
            "INSERT INTO drivers (name, licence_class, licence_no, unit_id) VALUES"
            " ('兴宁驾驶员', 'A1', 'XN00000001', :u) RETURNING id",
            u=org["450102-03"],
        )
    )
    for tid, vid in (("TQX00001", vehicle), ("TXN00001", xvehicle)):
        await session.execute(
            text("INSERT INTO terminals (id, secret_hash, vehicle_id) VALUES (:t, :h, :v)"),
            {"t": tid, "h": hash_secret("a-terminal-secret"), "v": vid},
        )
    fences = {}
    for name, unit in (("geofence", org["450103-03"]), ("xgeofence", org["450102-03"])):
        fences[name] = int(
            await _one(
                session,
                "INSERT INTO geofences (name, purpose, org_id, geom) VALUES ('围栏', 'depot', :o,"
                " ST_Multi(ST_GeomFromText('POLYGON((108.3 22.8, 108.31 22.8, 108.31 22.81,"
                " 108.3 22.8))', 4326))) RETURNING id",
                o=unit,
            )
        )
    alerts = {}
    for name, vid in (("alert", vehicle), ("xalert", xvehicle)):
        alerts[name] = int(
            await _one(
                session,
                "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, location, message,"
                " evidence, dedup_key) SELECT 'overspeed', v.id, v.unit_id, now(),"
                " ST_SetSRID(ST_MakePoint(108.3, 22.8), 4326), '超速', '{}', :k"
                " FROM vehicles v WHERE v.id = :v RETURNING id",
                v=vid,
                k=f"authz:{name}",
            )
        )
    await session.commit()

    # In-county trips (one approval step): from and to near 青秀's seat.
    lat, lon = (
        await session.execute(
            text("SELECT ST_Y(location), ST_X(location) FROM orgs WHERE id = :o"),
            {"o": org["450103"]},
        )
    ).one()
    here = {
        "origin": {"lat": lat + 0.01, "lon": lon + 0.01, "address": "区政府"},
        "destination": {"lat": lat + 0.03, "lon": lon + 0.02, "address": "政务服务中心"},
    }

    async def file(who: str) -> int:
        body = trip_body(submit=True, **here)
        r = await client.post(f"{API}/trips", json=body, headers=headers[who])
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    xtrip = await file("xuser")
    trip = await file("requester")
    approved = await file("requester")
    r = await client.post(f"{API}/trips/{approved}/approve", json={}, headers=headers["approver"])
    assert r.status_code == 200, r.text
    xassignment = int(
        await _one(
            session,
            "INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, starts_at, ends_at)"
            " SELECT id, :v, :d, departure_at, return_at FROM trip_requests WHERE id = :t"
            " RETURNING id",
            v=xvehicle,
            d=xdriver,
            t=xtrip,
        )
    )
    xproposal = int(
        await _one(
            session,
            "INSERT INTO optimizer_runs (org_id, created_by, window_start, window_end,"
            " time_limit_s, state, problem) VALUES (:o, :u, now(), now() + interval '1 day', 1,"
            " 'done', '{}') RETURNING id",
            o=org["450102"],
            u=xuser,
        )
    )
    usage = int(await _one(session, "SELECT min(id) FROM usage_standards WHERE org_id IS NULL"))
    cap = int(
        await _one(session, "SELECT min(id) FROM provisioning_standards WHERE org_id IS NULL")
    )
    await session.commit()
    refs = {
        "county": org["450103"],
        "unit": org["450103-02"],
        "pool_unit": org["450103-03"],
        "xcounty": org["450102"],
        "xunit": org["450102-03"],
        "system": org["SYS-GA"],
        "user": users["requester.qingxiu"],
        "xuser": xuser,
        "big_user": big_user,
        "vehicle": vehicle,
        "xvehicle": xvehicle,
        "pooled": pooled,
        "driver": driver,
        "xdriver": xdriver,
        "terminal": "TQX00001",
        "xterminal": "TXN00001",
        **fences,
        **alerts,
        "trip": trip,
        "approved": approved,
        "xtrip": xtrip,
        "xassignment": xassignment,
        "xproposal": xproposal,
        "usage": usage,
        "cap": cap,
    }
    return refs, headers


def _fill(value: Any, refs: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return refs[value[1:]]
    if isinstance(value, dict):
        return {k: _fill(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, refs) for v in value]
    return value


def _path(path: str, refs: dict[str, Any]) -> str:
    parts = path.split("/")
    return API + "/".join(str(_fill(p, refs)) for p in parts)


async def _send(
    client: httpx.AsyncClient, method: str, case: Case, refs: dict[str, Any], headers: Any
) -> httpx.Response:
    return await client.request(
        method,
        _path(case.path, refs),
        json=_fill(case.body, refs) if case.body is not None or method != "GET" else None,
        params=case.query,
        headers=headers[case.who],
    )


def _answer(r: httpx.Response) -> tuple[int, str | None, str | None]:
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    e = body.get("error", {}) if isinstance(body, dict) else {}
    return r.status_code, e.get("code"), e.get("field")


async def _check(
    client: httpx.AsyncClient, method: str, route: str, case: Case, world: Any
) -> list[str]:
    refs, headers = world
    problems = []
    r = await _send(client, method, case, refs, headers)
    got = _answer(r)
    want = (case.status, case.code, case.field) if case.field else (case.status, case.code)
    if got[: len(want)] != want:
        problems.append(f"{method} {route} as {case.who}: want {want}, got {got} {r.text[:200]}")
    if case.compare is not None:
        missing = {
            **refs,
            case.compare: MISSING_TERMINAL if "terminal" in case.compare else MISSING,
        }
        r2 = await _send(client, method, case, missing, headers)
        if _answer(r2) != got:
            problems.append(
                f"{method} {route} as {case.who}: @{case.compare} out of scope gives {got},"
                f" missing gives {_answer(r2)} — existence is an oracle"
            )
    return problems


async def test_writes_refuse_foreign_objects_and_roles_that_may_never_act(
    client: httpx.AsyncClient, world: Any
) -> None:
    problems: list[str] = []
    for (method, route), cases in WRITES.items():
        for case in cases:
            problems += await _check(client, method, route, case, world)
    assert not problems, "\n".join(problems)


async def test_by_id_reads_answer_out_of_scope_as_missing(
    client: httpx.AsyncClient, world: Any
) -> None:
    problems: list[str] = []
    for route, cases in READS.items():
        for case in cases:
            problems += await _check(client, "GET", route, case, world)
    assert not problems, "\n".join(problems)


async def test_batch_items_are_scoped(client: httpx.AsyncClient, world: Any) -> None:
    refs, headers = world
    items = [
        {"trip_id": refs["xtrip"], "vehicle_id": refs["vehicle"], "driver_id": refs["driver"]},
        {"trip_id": MISSING, "vehicle_id": refs["vehicle"], "driver_id": refs["driver"]},
        {"trip_id": refs["approved"], "vehicle_id": refs["xvehicle"], "driver_id": refs["driver"]},
        {"trip_id": refs["approved"], "vehicle_id": MISSING, "driver_id": refs["driver"]},
    ]
    r = await client.post(
        f"{API}/dispatch/assignments", json={"items": items}, headers=headers["disp"]
    )
    assert r.status_code == 200, r.text
    got = [(i["ok"], i["error"]["code"], i["error"]["field"]) for i in r.json()]
    assert got == [
        (False, "not_found", "trip_id"),
        (False, "not_found", "trip_id"),
        (False, "not_found", "vehicle_id"),
        (False, "not_found", "vehicle_id"),
    ]


async def test_notifications_of_others_are_untouched(
    client: httpx.AsyncClient, session: AsyncSession, world: Any
) -> None:
    refs, headers = world
    nid = await _one(
        session,
        "INSERT INTO notifications (user_id, kind, message) VALUES (:u, 'test', '测试')"
        " RETURNING id",
        u=refs["xuser"],
    )
    await session.commit()
    r = await client.post(
        f"{API}/me/notifications/read", json={"ids": [nid]}, headers=headers["disp"]
    )
    assert r.status_code == 200 and r.json()["marked"] == 0
    r = await client.get(f"{API}/me/notifications", headers=headers["xuser"])
    # Still unread. (Not the only one: xuser's own request waits at a unit level nobody can
    # decide, which they are told about.)
    assert nid in [n["id"] for n in r.json()["items"] if n["read_at"] is None]


async def test_reads_by_id_in_the_query(client: httpx.AsyncClient, world: Any) -> None:
    """`GET /costs?vehicle_id=|trip_id=` names one object: out of scope and missing alike."""
    refs, headers = world
    for param, ref in (("vehicle_id", "xvehicle"), ("trip_id", "xtrip")):
        answers = []
        for value in (refs[ref], MISSING):
            r = await client.get(f"{API}/costs", params={param: value}, headers=headers["disp"])
            answers.append(_answer(r))
        assert answers[0] == answers[1] == (404, "not_found", param), answers
