"""Benchmark: what issue 11's login and session rules cost, in-process on a real database.

    python -m bench.auth_costs                 # 40 refusals per kind, 6 x 200 API requests
    python -m bench.auth_costs --drop

1. **Refusal time of known vs unknown usernames** (wrong password, one at a time,
   alternating): both verify one argon2id hash (a dummy for an unknown name) and count one
   failure; the lock table is cleared before each so no lock interferes. Also a locked
   username's refusal (429, no hashing) and a successful login.
2. **Session check per request** on a hot read path (``GET /api/v1/vehicles?limit=20``):
   a token naming a server-side session (the check: one primary-key read, a write at most
   once a minute) against a sessionless token admitted by
   ``FLEET_AUTH__ACCEPT_SESSIONLESS_TOKENS`` (the path without the check), in alternating
   blocks so drift of the shared box hits both alike.

The database ``auth_bench`` (migrated, 200 vehicles seeded) is reused while it exists.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from bench.dbutil import percentile
from fleet.cli import migrate
from fleet.config import Settings, get_settings
from fleet.db import database_exists, drop_database, recreate_database

DB = "auth_bench"
MARKER = "bench_auth_ready"
PASSWORD = "bench-auth-password-1"


async def build() -> None:
    from dispatch.seed import SeedConfig, seed

    if await database_exists(DB, marker=MARKER):
        return
    db = get_settings().db.model_copy(update={"name": DB})
    await recreate_database(DB)
    await asyncio.to_thread(migrate, db)
    conn = await asyncpg.connect(db.owner().dsn())
    try:
        async with conn.transaction():
            cfg = SeedConfig(
                vehicles=200, seed=5, demo_password=PASSWORD, must_change_password=False
            )
            await seed(conn, cfg)
        await conn.execute(f"CREATE TABLE {MARKER} (built_at timestamptz DEFAULT now())")
    finally:
        await conn.close()


async def timed(n: int, fn: Callable[[], Awaitable[httpx.Response]], want: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await fn()
        out.append(time.perf_counter() - t0)
        assert r.status_code == want, r.text
    return out


def row(name: str, xs: list[float], unit: float = 1000.0, fmt: str = "{:.1f}") -> str:
    med, p95 = statistics.median(xs) * unit, percentile(xs, 0.95) * unit
    return f"| {name} | {len(xs)} | {fmt.format(med)} | {fmt.format(p95)} |"


async def run(refusals: int, blocks: int, per_block: int) -> None:
    from web.app import create_app

    settings: Settings = get_settings().model_copy(deep=True)
    settings.db.name = DB
    settings.auth.accept_sessionless_tokens = True  # for the baseline of part 2 only
    get_settings().db.name = DB  # the app's dependencies read the cached settings
    get_settings().auth.accept_sessionless_tokens = True
    get_settings().auth.source_failures = 10**9
    app = create_app(settings)
    owner = await asyncpg.connect(settings.db.owner().dsn())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:

            async def login(name: str, pw: str) -> httpx.Response:
                return await c.post("/api/v1/auth/login", json={"username": name, "password": pw})

            await login("dispatcher.qingxiu", PASSWORD)  # warm-up: pool threads, imports
            known: list[float] = []
            unknown: list[float] = []
            for i in range(refusals):
                await owner.execute("DELETE FROM login_failures")
                known += await timed(1, lambda: login("dispatcher.qingxiu", "wrong-pw-1"), 401)
                unknown += await timed(
                    1, functools.partial(login, f"nobody.{i}", "wrong-pw-1"), 401
                )
            await owner.execute("DELETE FROM login_failures")
            for _ in range(5):
                await login("approver.qingxiu", "wrong-pw-1")
            locked = await timed(refusals, lambda: login("approver.qingxiu", PASSWORD), 429)
            await owner.execute("DELETE FROM login_failures")
            ok = await timed(refusals // 4, lambda: login("dispatcher.nanning", PASSWORD), 200)
            print("\n| login (ms) | n | median | p95 |\n|---|---|---|---|")
            print(row("known user, wrong password (401)", known))
            print(row("unknown user (401)", unknown))
            print(row("locked user, right password (429)", locked))
            print(row("successful login (200)", ok))

            from fleet.identity.security import issue_token

            r = await login("dispatcher.qingxiu", PASSWORD)
            with_session = {"Authorization": f"Bearer {r.json()['access_token']}"}
            uid = int(r.json()["user"]["id"])
            sessionless = {
                "Authorization": f"Bearer {issue_token(settings.auth, uid).access_token}"
            }
            path = "/api/v1/vehicles"
            q = {"limit": 20}

            async def get(h: dict[str, str]) -> httpx.Response:
                return await c.get(path, params=q, headers=h)

            before: list[float] = []
            after: list[float] = []
            await timed(50, lambda: get(with_session), 200)
            await timed(50, lambda: get(sessionless), 200)
            for _ in range(blocks):
                before += await timed(per_block, lambda: get(sessionless), 200)
                after += await timed(per_block, lambda: get(with_session), 200)
            print(f"\n| GET {path}?limit=20 (ms) | n | median | p95 |\n|---|---|---|---|")
            print(row("without the session check", before, fmt="{:.2f}"))
            print(row("with the session check", after, fmt="{:.2f}"))
            d = (statistics.median(after) - statistics.median(before)) * 1e6
            print(f"\nsession check: {d:+.0f} µs per request (difference of medians)")
    await owner.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--refusals", type=int, default=40)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--per-block", type=int, default=200)
    ap.add_argument("--drop", action="store_true", help="drop the bench database afterwards")
    args = ap.parse_args()
    asyncio.run(build())
    try:
        asyncio.run(run(args.refusals, args.blocks, args.per_block))
    finally:
        if args.drop:
            asyncio.run(drop_database(DB))


if __name__ == "__main__":
    main()
