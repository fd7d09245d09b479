"""Benchmark: urgent suggestions (GET /dispatch/trips/{id}/suggestions) at region scale.

    python -m bench.urgent_suggest                 # build (or reuse) the database, measure
    python -m bench.urgent_suggest --repeat 50 --drop

The database (``urgent_bench``, reused when it exists) is migrated and seeded with the
region (26,638 vehicles; Nanning city has ~2,400 of them, 青秀区 ~250). Inside one
transaction that is rolled back at the end: an urgent approved trip of a 青秀区 unit
departing in 30 minutes; a booking on ``--booked`` of the city's vehicles (1–3 h, somewhere
in the next 6 h, one distinct driver each, so some drivers and vehicles clash with the trip);
a live fix for ``--live`` of them (within 5 km of the depot, 0–30 minutes old).

Then, over HTTP in-process (the app with its own spawned ranking process), the city and
the county dispatcher ask for 5 suggestions: once cold (the process is spawned) and
``--repeat`` times warm. The baseline in the same run is the same ranking called inline,
i.e. what running it on the event loop (or a thread holding the GIL) would block it for.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from fleet.config import get_settings
from fleet.db import database_exists, drop_database, recreate_database

DB = "urgent_bench"
PASSWORD = "bench-password-1"
VEHICLES = 26_638


async def build() -> None:
    from dispatch.seed import SeedConfig, seed
    from fleet.cli import migrate

    await recreate_database(DB)
    await asyncio.to_thread(migrate, get_settings().db.model_copy(update={"name": DB}))
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=DB), command_timeout=None)
    try:
        t = time.perf_counter()
        async with conn.transaction():
            await seed(
                conn,
                SeedConfig(
                    vehicles=VEHICLES,
                    seed=7,
                    demo_password=PASSWORD,
                    terminal_key="b",
                    must_change_password=False,
                ),
            )
            await conn.execute("CREATE TABLE bench_meta (built_at timestamptz DEFAULT now())")
            await conn.execute("INSERT INTO bench_meta DEFAULT VALUES")
        await conn.execute("VACUUM ANALYZE")
        print(f"seeded {VEHICLES:,} vehicles in {time.perf_counter() - t:.0f} s")
    finally:
        await conn.close()


_SCENARIO = [
    # the urgent trip: 3 passengers, 青秀区人民政府办公室, departs in 30 min for 2 h
    """
    INSERT INTO trip_requests (requester_id, unit_id, passengers, nature, purpose, origin,
        origin_address, destination, destination_address, departure_at, return_at,
        round_trip, urgency, kind, allowed_body_types, planned_km, state)
    SELECT u.id, o.id, 3, 'official', 'bench urgent', ST_SetSRID(ST_MakePoint(
        ST_X(c.location) + 0.01, ST_Y(c.location) + 0.01), 4326), 'origin',
        ST_SetSRID(ST_MakePoint(ST_X(c.location) + 0.05, ST_Y(c.location) + 0.03), 4326),
        'destination', now() + interval '30 minutes', now() + interval '150 minutes', true,
        'urgent', 'in_county', ARRAY['sedan', 'suv'], 12, 'approved'
    FROM orgs o JOIN orgs c ON c.code = '450103' JOIN users u ON u.username = 'requester.qingxiu'
    WHERE o.code = '450103-02'
    """,
    # city vehicles and drivers, numbered, for bookings and fixes
    """
    CREATE TEMP TABLE bv ON COMMIT DROP AS
    SELECT v.id, v.depot, row_number() OVER (ORDER BY hashtext(v.id::text)) AS n
    FROM vehicles v JOIN orgs o ON o.id = v.unit_id JOIN orgs c ON c.code = '450100'
    WHERE o.path <@ c.path AND v.status = 'in_service'
    """,
    """
    CREATE TEMP TABLE bd ON COMMIT DROP AS
    SELECT d.id, row_number() OVER (ORDER BY hashtext(d.id::text)) AS n
    FROM drivers d JOIN orgs o ON o.id = d.unit_id JOIN orgs c ON c.code = '450100'
    WHERE o.path <@ c.path AND d.status = 'active'
    """,
    """
    CREATE TEMP TABLE bb ON COMMIT DROP AS
    SELECT bv.id AS vehicle_id, bd.id AS driver_id, bv.n,
           now() + make_interval(mins => (hashtext(bv.id::text || 's') & 360)) AS s
    FROM bv JOIN bd ON bd.n = bv.n
    WHERE bv.n <= (SELECT count(*) FROM bv) * CAST(:booked AS float8)
    """,
    """
    WITH t AS (
        INSERT INTO trip_requests (requester_id, unit_id, passengers, nature, purpose, origin,
            origin_address, destination, destination_address, departure_at, return_at,
            round_trip, kind, allowed_body_types, planned_km, state)
        SELECT u.id, u.org_id, 2, 'official', 'bench booking ' || bb.n, v.depot, 'o', v.depot,
               'd', bb.s, bb.s + make_interval(mins => 60 + (bb.n % 120)::int), true,
               'in_county', ARRAY['sedan', 'suv', 'mpv'], 10, 'assigned'
        FROM bb JOIN vehicles v ON v.id = bb.vehicle_id
        JOIN users u ON u.username = 'requester.qingxiu'
        RETURNING id, purpose, departure_at, return_at)
    INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, starts_at, ends_at, state)
    SELECT t.id, bb.vehicle_id, bb.driver_id, t.departure_at, t.return_at, 'assigned'
    FROM t JOIN bb ON t.purpose = 'bench booking ' || bb.n
    """,
    """
    INSERT INTO latest_positions (vehicle_id, ts, terminal_id, geom, speed_kmh, fix)
    SELECT bv.id, now() - make_interval(mins => (bv.n % 31)::int), 'bench-' || bv.id,
           ST_SetSRID(ST_MakePoint(ST_X(bv.depot) + ((bv.n % 97) - 48) * 0.001,
                                   ST_Y(bv.depot) + ((bv.n % 89) - 44) * 0.001), 4326), 0, true
    FROM bv WHERE bv.n % 100 < :live
    ON CONFLICT (vehicle_id) DO UPDATE SET ts = EXCLUDED.ts, geom = EXCLUDED.geom
    """,
]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def measure(repeat: int, booked: float, live: int) -> None:
    from sqlalchemy import text

    from dispatch.optimize import suggest, suggestions
    from fleet.deps import get_session
    from web.app import create_app

    settings = get_settings().model_copy(deep=True)
    settings.db.name = DB
    engine = create_async_engine(settings.db.url(), pool_size=2)
    captured: list[dict[str, Any]] = []
    original = suggestions._rank

    async def capture(pool: Any, snap: dict[str, Any], limit: int) -> dict[str, Any]:
        captured.append(snap)
        return await original(pool, snap, limit)

    suggestions._rank = capture
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            session = AsyncSession(
                bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
            for sql in _SCENARIO:
                params = {"booked": booked, "live": live}
                await session.execute(
                    text(sql), {k: v for k, v in params.items() if f":{k}" in sql}
                )
            trip_id = await session.scalar(
                text("SELECT id FROM trip_requests WHERE purpose = 'bench urgent'")
            )
            counts = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM trip_assignments),"
                        " (SELECT count(*) FROM latest_positions)"
                    )
                )
            ).one()
            print(f"scenario: trip {trip_id}, {counts[0]} bookings, {counts[1]} live fixes")
            app = create_app(settings, manage_engine=False)

            async def _session() -> AsyncIterator[AsyncSession]:
                yield session

            app.dependency_overrides[get_session] = _session
            transport = httpx.ASGITransport(app=app)
            rows = []
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                for user in ("dispatcher.nanning", "dispatcher.qingxiu"):
                    r = await client.post(
                        "/api/v1/auth/login", json={"username": user, "password": PASSWORD}
                    )
                    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                    url = f"/api/v1/dispatch/trips/{trip_id}/suggestions?limit=5"
                    walls, parts = [], []
                    for i in range(repeat + 1):
                        t = time.perf_counter()
                        r = await client.get(url, headers=headers)
                        wall = (time.perf_counter() - t) * 1000
                        assert r.status_code == 200, r.text
                        body = r.json()
                        if i == 0:
                            cold = wall
                            top = body["suggestions"][0] if body["suggestions"] else None
                            first = body
                            continue
                        walls.append(wall)
                        parts.append(body["timings_ms"])
                    snap = captured[-1]
                    inline = []
                    for _ in range(repeat):
                        t = time.perf_counter()
                        suggest.rank_snapshot(snap, 5)
                        inline.append((time.perf_counter() - t) * 1000)
                    rows.append(
                        (
                            user,
                            first["vehicles_visible"],
                            len(snap["vehicles"]),
                            first["eligible"],
                            cold,
                            statistics.median(walls),
                            _pct(walls, 0.95),
                            statistics.median(p["read"] for p in parts),
                            statistics.median(p["build"] for p in parts),
                            statistics.median(p["rank_child"] for p in parts),
                            statistics.median(inline),
                        )
                    )
                    print(f"{user}: excluded {first['excluded']}")
                    if top:
                        print(f"  #1 {top['why']}")
            pool = getattr(app.state, "suggestion_pool", None)
            if pool is not None:
                pool.shutdown(wait=True)
            await session.close()
            await trans.rollback()
    finally:
        suggestions._rank = original
        await engine.dispose()
    head = (
        "dispatcher",
        "visible",
        "ranked",
        "eligible",
        "cold ms",
        "p50 ms",
        "p95 ms",
        "read",
        "build",
        "child",
        "inline (baseline)",
    )
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for row in rows:
        print(
            " | ".join(
                f"{x:.1f}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else x
                for x in row
            )
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="warm requests per dispatcher")
    ap.add_argument("--booked", type=float, default=0.4, help="share of city vehicles booked")
    ap.add_argument("--live", type=int, default=60, help="percent of them with a live fix")
    ap.add_argument("--rebuild", action="store_true", help="seed the database again")
    ap.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = ap.parse_args(argv)
    if args.rebuild or not asyncio.run(database_exists(DB, marker="bench_meta")):
        asyncio.run(build())
    asyncio.run(measure(args.repeat, args.booked, args.live))
    if args.drop:
        asyncio.run(drop_database(DB))


if __name__ == "__main__":
    main()
