"""A burst of logins against a real `fleet serve` whose one hashing thread is busy: the
waiting logins hold no database connection (a burst of 100 used to exhaust the pool and
answer 500), every login is answered, and the API keeps serving meanwhile; with no room to
wait, a login is refused with 503 and the login page says so in Chinese. Figures are
bench/login_burst.py's; nothing here is timed."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, expect

from fleet.config import Settings
from tests.web.conftest import ARTIFACTS, DEMO_PASSWORD, free_port, run_async
from tests.web.test_browser import new_context
from tests.web.test_live_account import Api

SLOW_PASSWORD = "slow-password-2"


@pytest.fixture(scope="module")
def api(web_settings: Settings) -> Iterator[Api]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a = Api(
        free_port(),
        ARTIFACTS / "login-burst.log",
        # one thread, and waits long enough for 8 slow verifies on a loaded box: no 503 here
        extra_env={"FLEET_AUTH__HASH_WORKERS": "1", "FLEET_AUTH__HASH_WAIT_S": "150"},
    )
    a.start(web_settings)
    yield a
    a.stop()


async def _slow_user(settings: Settings, passes: int = 20) -> str:
    """A committed user whose hash takes long to verify (20 passes instead of 3: ~0.5–1 s)."""
    name = f"slow.{secrets.token_hex(4)}"
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        await conn.execute(
            "INSERT INTO users (username, password_hash, display_name, org_id)"
            " SELECT $1, $2, '慢哈希', id FROM orgs WHERE kind = 'unit' ORDER BY id LIMIT 1",
            name,
            PasswordHasher(time_cost=passes).hash(SLOW_PASSWORD),
        )
    finally:
        await conn.close()
    return name


async def _held_connections(settings: Settings) -> int:
    """API connections inside an open transaction that is doing nothing (held, idle)."""
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND application_name = 'api' AND state = 'idle in transaction'",
                settings.db.name,
            )
        )
    finally:
        await conn.close()


def test_waiting_logins_hold_no_database_connection(api: Api, web_settings: Settings) -> None:
    async def go() -> None:
        name = await _slow_user(web_settings)
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=api.http, timeout=120, limits=limits) as c:
            burst = [
                asyncio.create_task(
                    c.post("/api/v1/auth/login", json={"username": name, "password": SLOW_PASSWORD})
                )
                for _ in range(8)
            ]
            await asyncio.sleep(1.0)  # one verifying, the others waiting for the thread
            assert sum(not t.done() for t in burst) >= 2, "the burst ended before sampling"
            held = await _held_connections(web_settings)
            health = await c.get("/api/v1/health")
            statuses = [r.status_code for r in await asyncio.gather(*burst)]
        assert held <= 1, f"{held} database connections held by waiting logins"
        assert health.status_code == 200
        assert statuses == [200] * 8, statuses

    run_async(go(), timeout=180)


def test_a_saturated_server_refuses_logins_with_503_shown_in_chinese(
    web_settings: Settings, browser: Browser
) -> None:
    full = Api(
        free_port(),
        ARTIFACTS / "login-busy.log",
        extra_env={"FLEET_AUTH__HASH_WORKERS": "1", "FLEET_AUTH__HASH_QUEUE": "0"},
    )
    full.start(web_settings)
    # ~3–10 s a verify: the thread is free only for the few ms between two of them
    name = run_async(_slow_user(web_settings, passes=100), timeout=120)
    stop = threading.Event()

    def occupy() -> None:
        """Slow verifies back to back keep the only hashing thread busy."""
        with httpx.Client(base_url=full.http, timeout=120) as c:
            while not stop.is_set():
                c.post("/api/v1/auth/login", json={"username": name, "password": "x-1"})

    busy = threading.Thread(target=occupy)
    busy.start()
    ctx = new_context(browser, full.http)
    try:
        body = {"username": "dispatcher.qingxiu", "password": DEMO_PASSWORD}
        for _ in range(50):  # until the slow verify holds the thread
            r = httpx.post(f"{full.http}/api/v1/auth/login", json=body, timeout=60)
            if r.status_code == 503:
                break
            time.sleep(0.1)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "auth_busy"
        assert r.headers["Retry-After"] == "1"
        page = ctx.new_page()
        page.goto("/login")
        page.fill("input[name=username]", "dispatcher.qingxiu")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_have_text("登录请求过多，请稍后重试")
    finally:
        stop.set()
        ctx.close()
        busy.join(120)
        full.stop()
