"""Failed logins (issue 11 item 1) through the real app: five in a row lock a username —
known or not — for 15 minutes (429 + Retry-After, the right password too), the lock is
audited, a security administrator unlocks; one source address has a failure budget."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import pubsub
from fleet.config import get_settings
from fleet.identity import lockout
from tests.conftest import DEMO_PASSWORD, Login

LOGIN = "/api/v1/auth/login"


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def _audit(session: AsyncSession, action: str, entity_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT actor, data FROM audit_log WHERE action = :a AND entity_id = :e ORDER BY id"),
        {"a": action, "e": entity_id},
    )
    return [dict(r._mapping) for r in rows]


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    name = "dispatcher.qingxiu"
    for _ in range(5):
        r = await _login(client, name, "wrong-password-1")
        assert r.status_code == 401, r.text
    r = await _login(client, name, DEMO_PASSWORD)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "account_locked"
    retry = int(r.headers["Retry-After"])
    assert 890 <= retry <= 900  # the default 15 minutes
    locked = await _audit(session, "auth.locked", name)
    assert len(locked) == 1 and locked[0]["data"]["failures"] == 5
    # A security administrator (today: the user administrator) unlocks; the login works.
    uid = await session.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": name})
    admin = await login("admin")
    r = await client.post(f"/api/v1/users/{uid}/unlock", headers=admin)
    assert r.status_code == 204, r.text
    assert (await _audit(session, "auth.unlock", str(uid)))[0]["data"] == {"was_locked": True}
    assert (await _login(client, name, DEMO_PASSWORD)).status_code == 200


async def test_a_success_resets_the_count(client: httpx.AsyncClient) -> None:
    name = "approver.qingxiu"
    for _ in range(4):
        assert (await _login(client, name, "wrong-password-1")).status_code == 401
    assert (await _login(client, name, DEMO_PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await _login(client, name, "wrong-password-1")).status_code == 401
    assert (await _login(client, name, DEMO_PASSWORD)).status_code == 200


async def test_an_unknown_username_locks_exactly_like_a_known_one(
    client: httpx.AsyncClient,
) -> None:
    """The lock is no oracle of which accounts exist."""
    answers = {}
    for name in ("requester.qingxiu", "nobody.at.all"):
        seq = [(await _login(client, name, "wrong-password-1")).status_code for _ in range(6)]
        answers[name] = seq
    assert answers["requester.qingxiu"] == answers["nobody.at.all"] == [401] * 5 + [429]


async def test_an_expired_lock_counts_from_one_again(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    name = "driver.qingxiu"
    for _ in range(5):
        await _login(client, name, "wrong-password-1")
    await session.execute(
        text("UPDATE login_failures SET locked_until = now() - interval '1 s' WHERE username = :u"),
        {"u": name},
    )
    await session.commit()  # into the test's transaction (a refused request rolls back its own)
    assert (await _login(client, name, "wrong-password-1")).status_code == 401
    assert (await _login(client, name, DEMO_PASSWORD)).status_code == 200


async def test_one_source_address_has_a_failure_budget(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request of the suite comes from 127.0.0.1: the budget starts where the run is.
    used = int(await pubsub.client().get(lockout._source_key("127.0.0.1")) or 0)
    monkeypatch.setattr(get_settings().auth, "source_failures", used + 3)
    for i in range(3):  # three different usernames: no account lock is involved
        assert (await _login(client, f"walker.{i}", "wrong-password-1")).status_code == 401
    r = await _login(client, "dispatcher.nanning", DEMO_PASSWORD)
    assert r.status_code == 429 and r.json()["error"]["code"] == "source_throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= get_settings().auth.source_window_s


async def test_only_a_security_administrator_unlocks(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    uid = await session.scalar(text("SELECT id FROM users WHERE username = 'auditor'"))
    r = await client.post(f"/api/v1/users/{uid}/unlock", headers=await login("dispatcher.qingxiu"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"


async def test_wrong_current_passwords_count_toward_the_lock(
    client: httpx.AsyncClient, login: Login
) -> None:
    """A stolen access token is no way to guess the password: the change-password form's
    wrong current passwords lock the account like failed logins."""
    headers = await login("dispatcher.xingning")
    body = {"current_password": "guess-Secret-1", "new_password": "Brand-New-Secret-9"}
    for _ in range(5):
        r = await client.post("/api/v1/auth/password", json=body, headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_password"
    r = await client.post("/api/v1/auth/password", json=body, headers=headers)
    assert r.status_code == 429 and r.json()["error"]["code"] == "account_locked"
    r = await _login(client, "dispatcher.xingning", DEMO_PASSWORD)
    assert r.status_code == 429 and r.json()["error"]["code"] == "account_locked"
