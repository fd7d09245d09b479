"""Server-side sessions (issue 11 item 3) through the real app: logout, refresh with its
cookie and CSRF token, revocation on password, deactivation and role changes, the user's own
sessions, an administrator ending anyone's, idle timeout and absolute lifetime."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEMO_PASSWORD, Login

API = "/api/v1"


class Browser:
    """One login's access token and cookies (kept by hand: the test host has no domain)."""

    def __init__(self, r: httpx.Response) -> None:
        assert r.status_code == 200, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.sid = ""
        self.cookies = {c.name: c for c in r.cookies.jar}
        self.set_cookie = r.headers.get_list("set-cookie")

    @property
    def refresh_cookie(self) -> str:
        return f"fleet_refresh={self.cookies['fleet_refresh'].value}"

    @property
    def csrf(self) -> str:
        return str(self.cookies["fleet_csrf"].value)


async def _signin(client: httpx.AsyncClient, username: str, pw: str = DEMO_PASSWORD) -> Browser:
    r = await client.post(f"{API}/auth/login", json={"username": username, "password": pw})
    return Browser(r)


def _code(r: httpx.Response) -> tuple[int, str | None]:
    return r.status_code, r.json().get("error", {}).get("code") if r.content else None


async def _refresh(client: httpx.AsyncClient, b: Browser, csrf: str | None) -> httpx.Response:
    headers = {"Cookie": b.refresh_cookie}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    client.cookies.clear()
    return await client.post(f"{API}/auth/refresh", headers=headers)


async def test_cookies_are_httponly_strict_and_the_refresh_needs_the_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    b = await _signin(client, "dispatcher.qingxiu")
    refresh = next(c for c in b.set_cookie if c.startswith("fleet_refresh="))
    assert "HttpOnly" in refresh and "SameSite=strict" in refresh
    assert "Path=/api/v1/auth" in refresh
    csrf = next(c for c in b.set_cookie if c.startswith("fleet_csrf="))
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    # The cookie alone never authenticates: without (or with a wrong) CSRF token, 401.
    assert _code(await _refresh(client, b, None)) == (401, "csrf_failed")
    assert _code(await _refresh(client, b, "guess")) == (401, "csrf_failed")
    r = await _refresh(client, b, b.csrf)
    assert r.status_code == 200, r.text
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get(f"{API}/orgs", headers=fresh)).status_code == 200


async def test_logout_ends_the_session_at_once(client: httpx.AsyncClient) -> None:
    b = await _signin(client, "dispatcher.qingxiu")
    other = await _signin(client, "dispatcher.qingxiu")
    assert (await client.get(f"{API}/orgs", headers=b.headers)).status_code == 200
    r = await client.post(f"{API}/auth/logout", headers=b.headers)
    assert r.status_code == 204
    assert any(c.startswith("fleet_refresh=") for c in r.headers.get_list("set-cookie"))
    assert _code(await client.get(f"{API}/orgs", headers=b.headers)) == (401, "session_ended")
    assert _code(await _refresh(client, b, b.csrf)) == (401, "session_ended")
    # The user's other session goes on.
    assert (await client.get(f"{API}/orgs", headers=other.headers)).status_code == 200


async def test_password_deactivation_and_role_changes_end_the_users_sessions(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    admin = await login("admin")
    cases = [
        ("requester.qingxiu", {"password": "Fresh-Secret-2026"}),
        ("approver.qingxiu", {"active": False}),
        ("driver.qingxiu", {"roles": []}),
    ]
    for username, patch in cases:
        b = await _signin(client, username)
        uid = await session.scalar(
            text("SELECT id FROM users WHERE username = :u"), {"u": username}
        )
        assert (await client.get(f"{API}/auth/sessions", headers=b.headers)).status_code == 200
        r = await client.patch(f"{API}/users/{uid}", json=patch, headers=admin)
        assert r.status_code == 200, r.text
        r = await client.get(f"{API}/auth/me", headers=b.headers)
        assert r.status_code == 401, (username, r.text)
        assert _code(await _refresh(client, b, b.csrf))[0] == 401


async def test_a_user_sees_and_ends_their_own_sessions_only(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    first = await _signin(client, "dispatcher.qingxiu")
    second = await _signin(client, "dispatcher.qingxiu")
    stranger = await _signin(client, "dispatcher.xingning")
    r = await client.get(f"{API}/auth/sessions", headers=second.headers)
    mine = r.json()
    assert len(mine) >= 2 and sum(s["current"] for s in mine) == 1
    first_id = next(s["id"] for s in mine if not s["current"])
    # Another user's session answers as a missing one.
    r = await client.delete(f"{API}/auth/sessions/{first_id}", headers=stranger.headers)
    assert _code(r) == (404, "not_found")
    r = await client.delete(f"{API}/auth/sessions/{first_id}", headers=second.headers)
    assert r.status_code == 204
    assert _code(await client.get(f"{API}/orgs", headers=first.headers))[0] == 401
    assert (await client.get(f"{API}/orgs", headers=second.headers)).status_code == 200


async def test_a_security_administrator_ends_anyones_sessions(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    admin = await login("admin")
    b = await _signin(client, "dispatcher.nanning")
    uid = await session.scalar(text("SELECT id FROM users WHERE username = 'dispatcher.nanning'"))
    r = await client.get(f"{API}/users/{uid}/sessions", headers=admin)
    assert r.status_code == 200 and len(r.json()) >= 1
    assert (await client.delete(f"{API}/users/{uid}/sessions", headers=admin)).status_code == 204
    assert _code(await client.get(f"{API}/orgs", headers=b.headers)) == (401, "session_ended")
    ended = await session.scalar(
        text("SELECT data->>'ended' FROM audit_log WHERE action = 'auth.sessions_ended'")
    )
    assert ended is not None and int(ended) >= 1


async def test_idle_and_absolute_limits_end_a_session(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    idle = await _signin(client, "dispatcher.qingxiu")
    old = await _signin(client, "dispatcher.xingning")
    await session.execute(
        text(
            "UPDATE auth_sessions SET last_seen_at = now() - interval '31 minutes'"
            " WHERE user_id = (SELECT id FROM users WHERE username = 'dispatcher.qingxiu')"
        )
    )
    await session.execute(
        text(
            "UPDATE auth_sessions SET expires_at = now() - interval '1 second'"
            " WHERE user_id = (SELECT id FROM users WHERE username = 'dispatcher.xingning')"
        )
    )
    await session.commit()
    assert _code(await client.get(f"{API}/orgs", headers=idle.headers)) == (401, "session_idle")
    assert _code(await _refresh(client, idle, idle.csrf)) == (401, "session_idle")
    assert _code(await client.get(f"{API}/orgs", headers=old.headers)) == (401, "session_expired")
