"""Logins, failed logins and refusals are audited (issue 18, item 7).

A refusal's entry is written after the request's own transaction rolled back, in a
transaction of its own: the last test runs the app on real, committing connections (the
runtime role) and reads the entry from another connection.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import Settings
from tests.conftest import DEMO_PASSWORD, Login
from web.refusals import RefusalBudget

API = "/api/v1"


async def _entries(session: AsyncSession, action: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT actor, actor_id, entity, entity_id, data FROM audit_log"
            " WHERE action = :a ORDER BY id"
        ),
        {"a": action},
    )
    return [dict(r._mapping) for r in rows]


async def test_login_and_failed_login_are_audited_without_the_password(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    r = await client.post(
        f"{API}/auth/login", json={"username": "dispatcher.qingxiu", "password": DEMO_PASSWORD}
    )
    assert r.status_code == 200
    ok = (await _entries(session, "auth.login"))[-1]
    assert ok["actor"] == "dispatcher.qingxiu" and ok["actor_id"] == r.json()["user"]["id"]
    assert ok["entity"] == "user" and ok["data"]["source"] == "127.0.0.1"
    assert ok["data"]["session"]  # the server-side session the login opened

    tries = [
        ("dispatcher.qingxiu", "Secret-Guess-1", "wrong_password"),
        ("nobody.here", "Secret-Guess-2", "unknown_user"),
    ]
    for username, password, _ in tries:
        r = await client.post(
            f"{API}/auth/login", json={"username": username, "password": password}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_credentials"
    failed = (await _entries(session, "auth.login_failed"))[-2:]
    assert [(f["entity_id"], f["data"]["reason"]) for f in failed] == [
        (u, why) for u, _, why in tries
    ]
    assert all(f["actor"] == "anonymous" and f["actor_id"] is None for f in failed)
    assert all(f["data"]["source"] == "127.0.0.1" for f in failed)
    dump = orjson.dumps(failed).decode()
    assert "Secret-Guess" not in dump  # never the password


async def test_401_and_403_are_audited_with_route_code_and_actor(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    r = await client.get(f"{API}/vehicles")
    assert r.status_code == 401
    r = await client.get(f"{API}/vehicles", headers={"Authorization": "Bearer forged.token.x"})
    assert r.status_code == 401
    requester = await login("requester.qingxiu")
    r = await client.get(f"{API}/vehicles", headers=requester)
    assert r.status_code == 403
    driver = await login("driver.qingxiu")
    r = await client.patch(f"{API}/vehicles/1", json={}, headers=driver)
    assert r.status_code == 403, r.text
    denied = (await _entries(session, "access.denied"))[-4:]
    seen = [(d["actor"], d["entity_id"], d["data"]["status"], d["data"]["code"]) for d in denied]
    assert seen[:3] == [
        ("anonymous", "GET /api/v1/vehicles", 401, "token_missing"),
        ("anonymous", "GET /api/v1/vehicles", 401, "token_invalid"),
        ("requester.qingxiu", "GET /api/v1/vehicles", 403, "role_required"),
    ]
    assert seen[3][0] == "driver.qingxiu" and seen[3][2] == 403
    assert seen[3][1] == "PATCH /api/v1/vehicles/{vehicle_id}"
    assert denied[3]["data"]["path"] == "/api/v1/vehicles/1"
    assert all(d["entity"] == "route" and d["data"]["source"] == "127.0.0.1" for d in denied)


async def test_a_flood_of_refusals_is_capped_per_source(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    now = [0.0]
    budget = RefusalBudget(per_source=3, total=100, clock=lambda: now[0])
    client._transport.app.state.refusal_budget = budget  # type: ignore[attr-defined]
    before = len(await _entries(session, "auth.login_failed"))
    # A different username each time: five failures of one would lock it (429, not audited).
    for i in range(8):
        r = await client.post(f"{API}/auth/login", json={"username": f"flood{i}", "password": "x"})
        assert r.status_code == 401  # every refusal still answers
    assert len(await _entries(session, "auth.login_failed")) == before + 3
    now[0] += 61  # the next minute: the count of what was held back rides on the next entry
    await client.post(f"{API}/auth/login", json={"username": "flood9", "password": "x"})
    last = (await _entries(session, "auth.login_failed"))[-1]
    assert last["data"]["suppressed_before"] == 5


def test_refusal_budget_caps_in_all_and_forgets_each_minute() -> None:
    now = [0.0]
    b = RefusalBudget(per_source=2, total=3, clock=lambda: now[0])
    got = [b.admit(src)[0] for src in ("a", "a", "a", "b", "c", "d")]
    assert got == [True, True, False, True, False, False]  # a's cap, then the total cap
    now[0] = 60.0
    assert b.admit("a") == (True, 1)
    assert b.admit("c") == (True, 1)
    assert b.admit("e") == (True, 0)


async def test_refusal_entries_commit_although_the_request_fails(settings: Settings) -> None:
    """No test transaction here: the app runs on real connections as the runtime role."""
    from fleet.db import make_engine, make_sessionmaker
    from web.app import create_app

    engine = make_engine(settings.db, application_name="test-refusals")
    app = create_app(settings, manage_engine=False)
    app.state.sessionmaker = make_sessionmaker(engine)
    name = "refusal.commit.probe"
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.post(f"{API}/auth/login", json={"username": name, "password": "nope"})
            assert r.status_code == 401
            r = await c.post(f"{API}/trips/1/approve", json={})
            assert r.status_code == 401
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        failed = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed' AND entity_id = $1",
            name,
        )
        denied = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'access.denied'"
            " AND entity_id = 'POST /api/v1/trips/{trip_id}/approve'"
        )
    finally:
        await conn.close()
    assert failed == 1 and denied >= 1
