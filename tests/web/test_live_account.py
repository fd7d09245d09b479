"""The live websocket without a secret in any log, and following its account, on two real
`fleet serve` processes (their only link is Redis and PostgreSQL, as across machines).

- tickets: bought over HTTP with the bearer token, single use, short-lived, redeemed by
  whichever process the websocket reaches; ``?token=`` is refused (issue 9 item 5);
- an account change made through one process closes the user's websockets on both at once:
  deactivation 4401 (and the console in Chromium then shows the login page), roles 4403 and a
  new ticket streams the new scope (issue 18 item 4);
- the whole log output of the run (uvicorn access and error logs, structlog) is grepped for
  every token, ticket and password used, and for ``eyJ`` (the start of every JWT).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from playwright.sync_api import Browser, expect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fleet.config import Settings
from fleet.identity.security import issue_token
from tests.web.conftest import ARTIFACTS, DEMO_PASSWORD, free_port, run_async
from tests.web.test_browser import login, new_context

FLEET_BIN = str(Path(sys.executable).with_name("fleet"))
# Everything secret this module used: none may appear in the servers' logs.
USED_SECRETS: set[str] = {DEMO_PASSWORD}


@dataclass
class Api:
    """One `fleet serve` process, its output captured to a file."""

    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/live"

    def start(self, settings: Settings) -> None:
        env = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_WEB__DEFAULT_TILES": "offline",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        out = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [FLEET_BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{self.http}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("fleet serve did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def apis(web_settings: Settings) -> Iterator[tuple[Api, Api]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a = Api(free_port(), ARTIFACTS / "live-account-a.log")
    # B's tickets last 2 s, so expiry is testable without waiting half a minute
    b = Api(
        free_port(),
        ARTIFACTS / "live-account-b.log",
        extra_env={"FLEET_AUTH__LIVE_TICKET_TTL_S": "2"},
    )
    a.start(web_settings)
    try:
        b.start(web_settings)
        yield a, b
    finally:
        a.stop()
        b.stop()


def token_for(api: Api, username: str, password: str) -> str:
    r = httpx.post(
        f"{api.http}/api/v1/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    tok = str(r.json()["access_token"])
    USED_SECRETS.add(tok)
    return tok


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def ticket(api: Api, tok: str) -> str:
    r = httpx.post(f"{api.http}/api/v1/live/ticket", headers=bearer(tok), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 < body["ttl_s"] <= 30
    USED_SECRETS.add(body["ticket"])
    return str(body["ticket"])


async def _org_ids(settings: Settings, *codes: str) -> list[int]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        return [int(await conn.fetchval("SELECT id FROM orgs WHERE code = $1", c)) for c in codes]
    finally:
        await conn.close()


@dataclass
class NewUser:
    id: int
    username: str
    password: str
    token: str


def new_dispatcher(api: Api, settings: Settings, county: str = "450103") -> NewUser:
    """A fresh dispatcher of one county (the demo users stay untouched for other tests)."""
    (org,) = run_async(_org_ids(settings, county))
    name = f"live.{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_urlsafe(12)}"
    USED_SECRETS.add(password)
    admin = token_for(api, "admin", DEMO_PASSWORD)
    r = httpx.post(
        f"{api.http}/api/v1/users",
        json={
            "username": name,
            "password": password,
            "display_name": "实时测试调度员",
            "org_id": org,
            "roles": [{"role": "dispatcher", "org_id": org}],
        },
        headers=bearer(admin),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    uid = int(r.json()["id"])
    # Set by an administrator, so changed at the first login (issue 11); the session goes on.
    token = token_for(api, name, password)
    final = f"Pw-{secrets.token_urlsafe(12)}"
    USED_SECRETS.add(final)
    r = httpx.post(
        f"{api.http}/api/v1/auth/password",
        json={"current_password": password, "new_password": final},
        headers=bearer(token),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return NewUser(uid, name, final, token)


def patch_user(api: Api, user_id: int, body: dict[str, Any]) -> None:
    admin = token_for(api, "admin", DEMO_PASSWORD)
    r = httpx.patch(
        f"{api.http}/api/v1/users/{user_id}", json=body, headers=bearer(admin), timeout=30
    )
    assert r.status_code == 200, r.text


async def open_live(url: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, open_timeout=20)
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
    assert hello["type"] == "hello", hello
    return ws, hello


async def refused(url: str) -> tuple[str, int]:
    """The error code and close code of a connection the server refuses."""
    async with connect(url, open_timeout=20) as ws:
        err = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        assert err["type"] == "error", err
        with pytest.raises(ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 20)
        assert exc.value.rcvd is not None
        return str(err["code"]), exc.value.rcvd.code


async def pong(ws: ClientConnection) -> None:
    """The connection is still served: a ping gets its pong."""
    await ws.send(orjson.dumps({"type": "ping"}).decode())
    while orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "pong":
        pass


async def closed_within(ws: ClientConnection, seconds: float) -> tuple[int, float]:
    """Read until the server closes: (close code, seconds it took); fails after `seconds`."""
    t0 = time.monotonic()
    with pytest.raises(ConnectionClosed) as exc:
        while True:
            await asyncio.wait_for(ws.recv(), seconds - (time.monotonic() - t0))
    assert exc.value.rcvd is not None, "closed without a close frame from the server"
    return exc.value.rcvd.code, time.monotonic() - t0


def test_tickets_are_single_use_short_lived_and_shared_by_processes(
    apis: tuple[Api, Api], web_settings: Settings
) -> None:
    a, b = apis
    user = new_dispatcher(a, web_settings)

    async def go() -> None:
        # bought on A, redeemed on B: tickets live in Redis, not in one process
        t = ticket(a, user.token)
        ws, hello = await open_live(f"{b.ws}?ticket={t}")
        assert hello["user"] == user.username and hello["vehicles"] > 0
        await ws.close()
        # single use, on either process
        assert await refused(f"{a.ws}?ticket={t}") == ("ticket_invalid", 4401)
        assert await refused(f"{b.ws}?ticket={t}") == ("ticket_invalid", 4401)
        # short-lived: B's tickets last 2 s
        late = ticket(b, user.token)
        await asyncio.sleep(3)
        assert await refused(f"{b.ws}?ticket={late}") == ("ticket_invalid", 4401)
        # a bearer token in the URL is refused (it would be logged), even a valid one
        assert await refused(f"{a.ws}?token={user.token}") == ("token_in_url", 4401)
        # the first-frame form for clients that are not browsers still works
        async with connect(a.ws, open_timeout=20) as ws2:
            await ws2.send(orjson.dumps({"type": "auth", "token": user.token}).decode())
            hello = orjson.loads(await asyncio.wait_for(ws2.recv(), 20))
            assert hello["type"] == "hello" and hello["user"] == user.username

    run_async(go(), timeout=120)
    # no ticket without a valid bearer token
    assert httpx.post(f"{a.http}/api/v1/live/ticket", timeout=30).status_code == 401
    r = httpx.post(f"{a.http}/api/v1/live/ticket", headers=bearer("x.y.z"), timeout=30)
    assert r.status_code == 401


def test_deactivation_closes_the_users_websockets_on_every_process(
    apis: tuple[Api, Api], web_settings: Settings
) -> None:
    a, b = apis
    user = new_dispatcher(a, web_settings)
    other = new_dispatcher(a, web_settings)

    async def go() -> None:
        on_a, _ = await open_live(f"{a.ws}?ticket={ticket(a, user.token)}")
        on_b, _ = await open_live(f"{b.ws}?ticket={ticket(b, user.token)}")
        bystander, _ = await open_live(f"{b.ws}?ticket={ticket(a, other.token)}")
        try:
            await asyncio.to_thread(patch_user, a, user.id, {"active": False})
            (code_a, s_a), (code_b, s_b) = await asyncio.gather(
                closed_within(on_a, 10), closed_within(on_b, 10)
            )
            assert (code_a, code_b) == (4401, 4401)
            print(f"closed after the PATCH returned: A {s_a * 1000:.0f} ms, B {s_b * 1000:.0f} ms")
            # another user's console on the same process stays open
            await pong(bystander)
        finally:
            await bystander.close()

    run_async(go(), timeout=120)
    # and the console cannot come back: no new ticket for a disabled account
    r = httpx.post(f"{b.http}/api/v1/live/ticket", headers=bearer(user.token), timeout=30)
    assert r.status_code == 401


def test_role_change_closes_with_4403_and_a_new_login_streams_the_new_scope(
    apis: tuple[Api, Api], web_settings: Settings
) -> None:
    a, b = apis
    user = new_dispatcher(a, web_settings)  # 青秀区
    (nanning,) = run_async(_org_ids(web_settings, "450100"))

    async def go() -> None:
        ws, hello = await open_live(f"{b.ws}?ticket={ticket(a, user.token)}")
        county_vehicles = hello["vehicles"]
        await asyncio.to_thread(
            patch_user, a, user.id, {"roles": [{"role": "dispatcher", "org_id": nanning}]}
        )
        code, _ = await closed_within(ws, 10)
        assert code == 4403
        # A role change ends the user's sessions (issue 11): the console, reloading, finds
        # its session gone and shows the login page; after signing in again it streams the
        # new scope.
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(f"{b.http}/api/v1/live/ticket", headers=bearer(user.token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "session_ended"
        token = await asyncio.to_thread(token_for, b, user.username, user.password)
        ws, hello = await open_live(f"{b.ws}?ticket={ticket(b, token)}")
        assert hello["vehicles"] > county_vehicles  # the whole city now
        await ws.close()
        # a change that leaves the roles as they were closes nothing
        ws, _ = await open_live(f"{a.ws}?ticket={ticket(a, token)}")
        await asyncio.to_thread(patch_user, a, user.id, {"display_name": "改名而已"})
        await pong(ws)
        await ws.close()

    run_async(go(), timeout=120)


def test_password_change_ends_the_users_websockets(
    apis: tuple[Api, Api], web_settings: Settings
) -> None:
    """4401: the console asks for a new ticket, which is refused: a password reset ends the
    user's sessions (issue 11), and the console then shows the login page."""
    a, b = apis
    user = new_dispatcher(a, web_settings)
    new_password = f"Pw-{secrets.token_urlsafe(12)}"
    USED_SECRETS.add(new_password)

    async def go() -> None:
        ws, _ = await open_live(f"{b.ws}?ticket={ticket(b, user.token)}")
        await asyncio.to_thread(patch_user, a, user.id, {"password": new_password})
        code, _ = await closed_within(ws, 10)
        assert code == 4401
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(f"{b.http}/api/v1/live/ticket", headers=bearer(user.token))
        assert r.status_code == 401 and r.json()["error"]["code"] == "session_ended"

    run_async(go(), timeout=120)
    token_for(a, user.username, new_password)


def test_a_connection_ends_with_its_bearer_token(
    apis: tuple[Api, Api], web_settings: Settings
) -> None:
    a, _ = apis
    user = new_dispatcher(a, web_settings)
    short = issue_token(web_settings.auth, user.id, ttl_s=3).access_token
    USED_SECRETS.add(short)

    async def go() -> None:
        ws, _ = await open_live(f"{a.ws}?ticket={ticket(a, short)}")
        code, seconds = await closed_within(ws, 15)
        assert code == 4401 and seconds < 10

    run_async(go(), timeout=60)


def test_a_lost_account_event_is_caught_by_the_periodic_reload(
    web_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes written behind the API's back (no event on the bus) still end the connection
    at the next reload of the account (every live_auth.REFRESH_S, 1 s here)."""
    import web.live_auth
    from tests.telematics.test_live import Server

    monkeypatch.setattr(web.live_auth, "REFRESH_S", 1.0)
    server = Server(web_settings)
    server.start()
    api = Api(server.port, ARTIFACTS / "unused.log")
    (nanning,) = run_async(_org_ids(web_settings, "450100"))
    try:
        disabled = new_dispatcher(api, web_settings)
        moved = new_dispatcher(api, web_settings)

        async def go() -> None:
            ws1, _ = await open_live(f"{api.ws}?ticket={ticket(api, disabled.token)}")
            ws2, _ = await open_live(f"{api.ws}?ticket={ticket(api, moved.token)}")
            conn = await asyncpg.connect(web_settings.db.dsn())
            try:
                await conn.execute("UPDATE users SET active = false WHERE id = $1", disabled.id)
                await conn.execute(
                    "UPDATE role_bindings SET org_id = $1 WHERE user_id = $2", nanning, moved.id
                )
            finally:
                await conn.close()
            assert (await closed_within(ws1, 10))[0] == 4401
            assert (await closed_within(ws2, 10))[0] == 4403

        run_async(go(), timeout=60)
    finally:
        server.stop()


def test_console_shows_the_login_page_when_the_account_is_disabled(
    apis: tuple[Api, Api], web_settings: Settings, browser: Browser
) -> None:
    a, b = apis
    user = new_dispatcher(a, web_settings)
    ctx = new_context(browser, a.http)
    page = ctx.new_page()
    try:
        login(page, user.username, user.password, "/console")
        expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "open")
        patch_user(b, user.id, {"active": False})  # through the other process
        t0 = time.monotonic()
        expect(page.locator("input[name=password]")).to_be_visible(timeout=15_000)
        print(f"login page shown {time.monotonic() - t0:.1f} s after the deactivation")
    finally:
        ctx.close()


def test_no_secret_in_the_logs_of_a_real_run(
    apis: tuple[Api, Api], web_settings: Settings, browser: Browser
) -> None:
    """A browser session, logins right and wrong, tickets, refused URL tokens — then every
    line both processes wrote holds none of the tokens, tickets or passwords used."""
    a, b = apis
    user = new_dispatcher(a, web_settings)
    wrong = f"Wrong-{secrets.token_urlsafe(10)}"
    USED_SECRETS.add(wrong)
    # a browser: a failed login, then a login and the console's live feed (tickets)
    ctx = new_context(browser, a.http)
    page = ctx.new_page()
    try:
        page.goto("/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", wrong)
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_be_visible()
        # The page keeps its access token in memory only: take it from the login's answer.
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/login")) as answer:
            login(page, user.username, user.password, "/console")
        expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "open")
        USED_SECRETS.add(answer.value.json()["access_token"])
    finally:
        ctx.close()
    # clients that do it wrong: a wrong password over HTTP, secrets in query strings
    r = httpx.post(
        f"{a.http}/api/v1/auth/login",
        json={"username": user.username, "password": wrong},
        timeout=30,
    )
    assert r.status_code == 401
    r = httpx.get(
        f"{a.http}/api/v1/auth/me",
        params={"token": user.token, "password": user.password, "access_token": user.token},
        headers=bearer(user.token),
        timeout=30,
    )
    assert r.status_code == 200

    async def go() -> None:
        assert await refused(f"{b.ws}?token={user.token}") == ("token_in_url", 4401)
        t = ticket(b, user.token)
        ws, _ = await open_live(f"{b.ws}?ticket={t}")
        await ws.close()
        assert (await refused(f"{a.ws}?ticket={t}"))[0] == "ticket_invalid"

    run_async(go(), timeout=120)
    a.stop()  # flush and close both logs
    b.stop()
    text = a.log_path.read_text(errors="replace") + b.log_path.read_text(errors="replace")
    # the logs are really there: access lines with their (scrubbed) query strings, and the
    # app's own structured events
    assert "POST /api/v1/auth/login" in text and "/api/v1/auth/me?token=[redacted]" in text
    assert "live.connected" in text
    leaks = sorted(s[:12] + "…" for s in USED_SECRETS if s and s in text)
    assert not leaks, f"secrets in the logs: {leaks}"
    assert "eyJ" not in text
    assert user.password not in text and wrong not in text
