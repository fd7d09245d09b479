"""Benchmark: does a burst of logins stall the API? `/health` latency under N parallel logins.

    python -m bench.login_burst                       # bursts of 20 and 100, both modes, 2 rounds
    python -m bench.login_burst --logins 20 --bursts 10 --rounds 3 --drop

Each mode runs a real `fleet serve` on a database of its own (``login_bench``: migrated, one
org, ``--users`` logins sharing one argon2id hash — same cost as distinct hashes — reused
while it exists):

- ``inline``: ``FLEET_AUTH__HASH_WORKERS=0``, argon2 on the event loop — the code before
  issue 18 item 5, kept as this bench's baseline;
- ``pool``: the default, argon2 in the bounded thread pool (fleet/identity/hashing.py).

Modes alternate within each round (the box is shared, so load drifts). Per mode: `/health`
probed every 20 ms on a connection of its own while idle, then during ``--bursts`` bursts of
N logins fired at once (each burst waits for the previous to finish); login latency and
status (200, or 503 ``auth_busy`` when the pool sheds); and, one at a time, logins of a known
user with a wrong password against unknown users (a dummy verify keeps them alike).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import httpx
from argon2 import PasswordHasher

from bench.dbutil import percentile
from bench.ingest_common import FLEET_BIN, free_port, machine, table
from fleet.cli import migrate
from fleet.config import get_settings
from fleet.db import database_exists, drop_database, recreate_database

DB = "login_bench"
MARKER = "bench_login_ready"
PASSWORD = "bench-login-password-1"
PROBE_EVERY_S = 0.02


async def build(users: int) -> None:
    """Migrate and add one org and `users` logins (skipped when already built)."""
    if await database_exists(DB, marker=MARKER):
        return
    db = get_settings().db.model_copy(update={"name": DB})
    await recreate_database(DB)
    await asyncio.to_thread(migrate, db)  # as the owner; provisions the runtime role
    password_hash = PasswordHasher().hash(PASSWORD)  # the app's parameters (argon2-cffi's)
    conn = await asyncpg.connect(db.owner().dsn())
    try:
        org = await conn.fetchval(
            "INSERT INTO orgs (kind, code, name, path) VALUES ('region', 'BENCH', '基准区', '0')"
            " RETURNING id"
        )
        await conn.execute("UPDATE orgs SET path = $1::text::ltree WHERE id = $2", str(org), org)
        await conn.executemany(
            "INSERT INTO users (username, password_hash, display_name, org_id)"
            " VALUES ($1, $2, $1, $3)",
            [(f"bench.{i}", password_hash, org) for i in range(users)],
        )
        await conn.execute(f"CREATE TABLE {MARKER} (built_at timestamptz DEFAULT now())")
    finally:
        await conn.close()


@dataclass
class Result:
    mode: str
    logins: int
    idle: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    login: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    burst_s: float = 0.0
    known_wrong: list[float] = field(default_factory=list)
    unknown: list[float] = field(default_factory=list)


async def admin_sql(name: str, sql: str) -> None:
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=name))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_api(mode: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLEET_DB__NAME": DB,
        "FLEET_REDIS__CHANNEL_PREFIX": f"bench-login-{uuid.uuid4().hex[:8]}",
        # Every login comes from 127.0.0.1: the per-source failure budget (issue 11) would
        # refuse the known/unknown comparison after 20 failures.
        "FLEET_AUTH__SOURCE_FAILURES": "1000000",
    }
    if mode == "inline":
        env["FLEET_AUTH__HASH_WORKERS"] = "0"
    return subprocess.Popen(
        [FLEET_BIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=2) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("fleet serve exited")
            try:
                if (await c.get("/api/v1/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError("fleet serve did not answer within 60 s")


async def probe(base: str, until: asyncio.Event, out: list[float]) -> None:
    """`/health` every PROBE_EVERY_S on a connection of its own, until `until` is set."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        while not until.is_set():
            t0 = time.perf_counter()
            r = await c.get("/api/v1/health")
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200
            await asyncio.sleep(PROBE_EVERY_S)


async def measure(mode: str, logins: int, bursts: int, users: int, idle_s: float) -> Result:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_api(mode, port)
    res = Result(mode, logins)
    try:
        await wait_ready(base, proc)
        limits = httpx.Limits(max_connections=logins + 5, max_keepalive_connections=logins + 5)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:

            async def login(i: int, password: str = PASSWORD) -> float:
                t0 = time.perf_counter()
                r = await c.post(
                    "/api/v1/auth/login",
                    json={"username": f"bench.{i % users}", "password": password},
                )
                res.statuses[r.status_code] = res.statuses.get(r.status_code, 0) + 1
                return time.perf_counter() - t0

            await login(0)  # warm: first request, imports, pool threads
            stop = asyncio.Event()
            idle = asyncio.create_task(probe(base, stop, res.idle))
            await asyncio.sleep(idle_s)
            stop.set()
            await idle
            res.statuses.clear()
            stop = asyncio.Event()
            prober = asyncio.create_task(probe(base, stop, res.burst))
            t0 = time.perf_counter()
            for _ in range(bursts):
                res.login += await asyncio.gather(*(login(i) for i in range(logins)))
            res.burst_s = time.perf_counter() - t0
            stop.set()
            await prober
            # Five failures in a row lock a username (issue 11): start each run from none.
            await admin_sql(DB, "DELETE FROM login_failures")
            for k in range(10):  # one at a time: known user + wrong password vs unknown user
                t0 = time.perf_counter()
                r = await c.post(
                    "/api/v1/auth/login", json={"username": f"bench.{k}", "password": "wrong-1"}
                )
                res.known_wrong.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                r2 = await c.post(
                    "/api/v1/auth/login", json={"username": f"nobody.{k}", "password": "wrong-1"}
                )
                res.unknown.append(time.perf_counter() - t0)
                assert r.status_code == r2.status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
    return res


def ms(xs: list[float], q: float) -> str:
    return f"{percentile(xs, q) * 1000:.0f}" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logins", default="20,100", help="burst sizes, comma-separated")
    ap.add_argument("--bursts", type=int, default=5, help="bursts per mode and size")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two modes")
    ap.add_argument("--modes", default="inline,pool")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--idle-s", type=float, default=3.0)
    ap.add_argument("--drop", action="store_true", help="drop the bench database afterwards")
    args = ap.parse_args()
    sizes = [int(x) for x in args.logins.split(",")]
    modes = args.modes.split(",")
    asyncio.run(build(args.users))
    load = os.getloadavg()
    results: list[Result] = []
    try:
        for _ in range(args.rounds):
            for n in sizes:
                for mode in modes:
                    results.append(
                        asyncio.run(measure(mode, n, args.bursts, args.users, args.idle_s))
                    )
    finally:
        if args.drop:
            asyncio.run(drop_database(DB))
    load_end = os.getloadavg()
    s = get_settings().auth
    print(f"machine: {machine()}")
    print(
        f"load average (1/5/15 min) at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f},"
        f" at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}"
    )
    print(
        f"pool: {s.hash_workers} threads, {s.hash_queue} may wait (<= {s.hash_wait_s:g} s);"
        f" {args.bursts} bursts per row, /health every {PROBE_EVERY_S * 1000:.0f} ms"
    )
    rows = []
    for n in sizes:
        for mode in modes:
            rs = [r for r in results if r.mode == mode and r.logins == n]
            idle = [x for r in rs for x in r.idle]
            burst = [x for r in rs for x in r.burst]
            login = [x for r in rs for x in r.login]
            statuses: dict[int, int] = {}
            for r in rs:
                for k, v in r.statuses.items():
                    statuses[k] = statuses.get(k, 0) + v
            ok = statuses.get(200, 0)
            rows.append(
                (
                    mode,
                    n,
                    f"{ms(idle, 0.5)} / {ms(idle, 0.99)}",
                    f"{ms(burst, 0.5)} / {ms(burst, 0.99)} / {ms(burst, 1.0)}",
                    len(burst),
                    f"{ms(login, 0.5)} / {ms(login, 0.99)}",
                    f"{ok / sum(r.burst_s for r in rs):.1f}",
                    ok,
                    statuses.get(503, 0),
                    " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()) if k not in (200, 503))
                    or "-",
                    f"{statistics.median(x for r in rs for x in r.known_wrong) * 1000:.0f}"
                    f" / {statistics.median(x for r in rs for x in r.unknown) * 1000:.0f}",
                )
            )
    print(
        table(
            rows,
            (
                "mode",
                "logins/burst",
                "health idle p50/p99 ms",
                "health in bursts p50/p99/max ms",
                "probes",
                "login p50/p99 ms",
                "logins/s",
                "200",
                "503",
                "other",
                "wrong pw known/unknown p50 ms",
            ),
        )
    )


if __name__ == "__main__":
    main()
