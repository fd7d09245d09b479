"""argon2 never runs on the event loop (issue 18 item 5): logins hash in a bounded pool, a
saturated pool answers 503 with Retry-After, and every refusal costs one verify."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.errors import Busy
from fleet.identity import hashing
from fleet.identity.models import Org, User
from tests.conftest import DEMO_PASSWORD

SLOW_PASSWORD = "slow-password-1"
# 20 passes instead of 3: a verify of ~0.5–1 s, long enough to watch the loop during it
SLOW_HASH = PasswordHasher(time_cost=20).hash(SLOW_PASSWORD)


@pytest.fixture
async def slow_user(session: AsyncSession) -> AsyncIterator[User]:
    org_id = await session.scalar(select(Org.id).where(Org.kind == "unit").limit(1))
    assert org_id is not None
    user = User(username="slow.hash", password_hash=SLOW_HASH, display_name="慢哈希", org_id=org_id)
    session.add(user)
    await session.flush()
    yield user


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def test_login_leaves_the_event_loop_free(client: httpx.AsyncClient, slow_user: User) -> None:
    """A 10 ms ticker on the same loop keeps ticking while the login's argon2 runs; hashed on
    the loop it would stand still for the whole verify."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    r = await _login(client, slow_user.username, SLOW_PASSWORD)
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    assert r.status_code == 200, r.text
    assert elapsed >= 0.2, "the slow hash did not run"
    # ~elapsed / 10 ms ticks when the loop is free; 0–2 (the DB round trips) when it is not
    assert ticks >= 10, f"{ticks} ticks in {elapsed * 1000:.0f} ms: the loop was blocked"


async def test_every_refusal_costs_one_verify(
    client: httpx.AsyncClient, session: AsyncSession, slow_user: User
) -> None:
    """Unknown user, wrong password, disabled account: each answered 401 after one argon2
    verify (a dummy hash for the unknown name), so timing does not tell them apart."""
    pool = hashing.pool()
    slow_user.active = False
    await session.flush()
    cases = [
        ("nobody.at.all", "whatever-1"),
        ("dispatcher.qingxiu", "not-the-password"),
        (slow_user.username, SLOW_PASSWORD),  # right password, disabled account
    ]
    for username, password in cases:
        before = pool.stats.verifies
        r = await _login(client, username, password)
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_credentials"
        assert pool.stats.verifies == before + 1, username


async def test_a_saturated_pool_answers_503_with_retry_after(
    client: httpx.AsyncClient, slow_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    tight = hashing.PasswordPool(workers=1, queue=0, wait_s=5.0)
    monkeypatch.setattr(hashing, "_pool", tight)
    try:
        busy = asyncio.create_task(tight.verify(SLOW_HASH, SLOW_PASSWORD))  # takes the thread
        await asyncio.sleep(0.05)
        r = await _login(client, "dispatcher.qingxiu", "whatever-2")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "auth_busy"
        assert r.headers["Retry-After"] == "1"
        assert await busy is True
        # once the thread is free, logins go through again (the 503 rolled the request's
        # session back, slow_user with it: a seeded user)
        r = await _login(client, "dispatcher.qingxiu", DEMO_PASSWORD)
        assert r.status_code == 200, r.text
    finally:
        tight.close()


async def test_waiters_are_bounded_in_number_and_time() -> None:
    pool = hashing.PasswordPool(workers=1, queue=1, wait_s=0.2)
    try:
        first = asyncio.create_task(pool.verify(SLOW_HASH, SLOW_PASSWORD))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(pool.verify(SLOW_HASH, SLOW_PASSWORD))  # waits
        await asyncio.sleep(0.05)
        with pytest.raises(Busy):  # a second waiter is one too many
            await pool.verify(SLOW_HASH, SLOW_PASSWORD)
        with pytest.raises(Busy):  # the first waiter gives up after 0.2 s
            await second
        assert await first is True
        assert pool.stats.refused == 2
        # a cancelled request frees its place in the queue without hashing
        third = asyncio.create_task(pool.verify(SLOW_HASH, SLOW_PASSWORD))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(pool.verify(SLOW_HASH, SLOW_PASSWORD))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.waiting == 0
        assert await third is True
    finally:
        pool.close()
