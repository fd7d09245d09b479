"""Benchmark: auto-assign end to end for one city day, as a city dispatcher runs it.

    python -m bench.auto_assign                   # build (or reuse) the database, measure
    python -m bench.auto_assign --requests 500 --time-limit 20
    python -m bench.auto_assign --no-baseline     # skip the plain one-solve comparison
    python -m bench.auto_assign --profile-accept  # cProfile the accept, top functions printed
    python -m bench.auto_assign --drop            # drop the database afterwards

The database (``autoassign_bench_<hash of the data parameters>``, reused when it exists) is
migrated with the project's migrations and seeded with the region (``dispatch.seed``, the
same 26,638 vehicles as ``fleet seed``). Each run then files ``--requests`` approved trip
requests for tomorrow (Asia/Shanghai) in the city (Nanning, 450100), spread over the units of
its counties, in SQL with what the approval flow leaves behind (state ``approved``,
``approval_status`` approved, the in-county/cross-county/emergency chain, one approved
``approval_steps`` row, allowed body types from the usage standards, planned km as the
service computes it); the previous run's bench trips, bookings and proposals are deleted.

Mix: passengers 1–4 (80 %), 5–7 (15 %), 8–15 (4 %), 20–35 (1 %); nature mostly official or
meeting, some inspection, reception, courier; departures 07:30–17:30 local with morning and
early-afternoon peaks; 60 % wait-and-return trips of 1–4 h (some full days), 40 % one-way
bookings of 30–90 min; destinations mostly in the county, a quarter to the city centre, some
to another county; 5 % urgent, 1 % emergency.

Then, as ``dispatcher.nanning`` through the real FastAPI app (httpx ASGITransport, the app's
own engine and lifespan):

1. ``POST /dispatch/proposals`` (the snapshot build), timed;
2. the worker's ``run_next`` with a real spawned child (``make_executor``, warmed first),
   wall time; region mode when the proposal's stats carry ``parts``;
3. ``POST /dispatch/proposals/{id}/accept`` (every item through ``apply_assignments``),
   timed; then checks in the database: no two active bookings of a vehicle or a driver
   overlap, every accepted trip is ``assigned`` with exactly the proposed booking, every
   refused one still ``approved``.

Baseline in the same run: the same snapshot solved with one plain ``optimizer.solve`` (no
region mode) in a spawned child with the same time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from fleet.config import Settings, get_settings
from fleet.db import database_exists, drop_database, recreate_database

PREFIX = "autoassign_bench_"
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
CITY = "450100"  # 南宁市
DISPATCHER = "dispatcher.nanning"
PASSWORD = "bench-password-1"  # the demo logins of the bench database only
PURPOSE = "bench:auto_assign"


def _echo(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class Data:
    """What the database holds; its hash names the database."""

    vehicles: int = 26_638
    region_seed: int = 42  # fleet seed's default
    requests: int = 2_000
    seed: int = 11

    def db_name(self) -> str:
        key = json.dumps(asdict(self), sort_keys=True).encode()
        return PREFIX + hashlib.sha1(key).hexdigest()[:10]


async def build(data: Data) -> None:
    """Create, migrate and seed the region (demo logins with the bench password)."""
    from dispatch.seed import SeedConfig, seed
    from fleet.cli import migrate

    settings = get_settings()
    name = data.db_name()
    await recreate_database(name)
    await asyncio.to_thread(migrate, settings.db.model_copy(update={"name": name}))
    conn = await asyncpg.connect(settings.db.owner().dsn(name=name), command_timeout=None)
    try:
        t = time.perf_counter()
        async with conn.transaction():
            report = await seed(
                conn,
                SeedConfig(
                    vehicles=data.vehicles,
                    seed=data.region_seed,
                    demo_password=PASSWORD,
                    terminal_key="bench",
                    must_change_password=False,
                ),
            )
            # One requester per unit of the city's counties (the trips' requester_id).
            await conn.execute(
                """
                WITH u AS (
                    INSERT INTO users (username, password_hash, display_name, org_id)
                    SELECT 'bench.requester.' || o.code, '!', o.name || ' 申请人', o.id
                    FROM orgs o JOIN orgs c ON c.code = $1 AND o.path <@ c.path
                    WHERE o.kind = 'unit' AND nlevel(o.path) = nlevel(c.path) + 2
                    RETURNING id, org_id)
                INSERT INTO role_bindings (user_id, role, org_id)
                SELECT id, 'requester', org_id FROM u
                """,
                CITY,
            )
            await conn.execute("CREATE TABLE bench_meta (data jsonb NOT NULL)")
            await conn.execute(
                "INSERT INTO bench_meta VALUES ($1::jsonb)", json.dumps(asdict(data))
            )
        await conn.execute("VACUUM ANALYZE")
        _echo(
            f"seed: {report.vehicles:,} vehicles, {report.drivers:,} drivers,"
            f" {time.perf_counter() - t:.0f}s"
        )
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# the day's requests


def _offset(rng: random.Random, lat: float, lon: float, km: float) -> tuple[float, float]:
    r = km * math.sqrt(rng.random())
    a = rng.random() * 2 * math.pi
    return (
        round(lat + r * math.cos(a) / 111.0, 6),
        round(lon + r * math.sin(a) / (111.0 * math.cos(math.radians(lat))), 6),
    )


def _departure_min(rng: random.Random) -> int:
    """Local minutes after midnight: peaks at 08:30–10:00 and 14:00–15:30, 07:30–17:30."""
    roll = rng.random()
    if roll < 0.4:
        m = rng.gauss(9 * 60 + 15, 35)
    elif roll < 0.7:
        m = rng.gauss(14 * 60 + 45, 35)
    else:
        m = rng.uniform(7.5 * 60, 17.5 * 60)
    return int(min(max(m, 7.5 * 60), 17.5 * 60)) // 5 * 5


async def file_requests(conn: asyncpg.Connection, data: Data, day: date) -> dict[str, int]:
    """Delete the previous run's trips/bookings/proposals; file `data.requests` approved ones."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from dispatch.standards.service import allowed_body_types
    from dispatch.trips.service import planned_km

    await conn.execute("DELETE FROM optimizer_runs")
    await conn.execute("DELETE FROM notifications")
    await conn.execute("DELETE FROM trip_requests WHERE purpose LIKE $1", PURPOSE + "%")
    units = await conn.fetch(
        """
        SELECT o.id, o.code, o.name, ST_Y(o.location) AS lat, ST_X(o.location) AS lon,
               c.code AS county, ST_Y(c.location) AS clat, ST_X(c.location) AS clon,
               u.id AS requester
        FROM orgs city
        JOIN orgs c ON c.parent_id = city.id AND c.kind = 'county'
        JOIN orgs o ON o.parent_id = c.id AND o.kind = 'unit'
        JOIN users u ON u.username = 'bench.requester.' || o.code
        WHERE city.code = $1 ORDER BY o.id
        """,
        CITY,
    )
    centre = await conn.fetchrow(
        "SELECT ST_Y(location) AS lat, ST_X(location) AS lon FROM orgs WHERE code = $1", CITY
    )
    assert centre is not None
    chains = {
        r["kind"]: r["id"]
        for r in await conn.fetch("SELECT id, kind FROM approval_chains WHERE org_id IS NULL")
    }
    approver = await conn.fetchval("SELECT id FROM users WHERE username = 'approver.qingxiu'")
    counties = sorted({u["county"] for u in units})
    county_at = {u["county"]: (u["clat"], u["clon"]) for u in units}
    # Allowed body types exactly as the service derives them (usage standards in the DB).
    engine = create_async_engine(get_settings().db.url(name=data.db_name()))
    allowed: dict[tuple[str, int], list[str]] = {}
    async with AsyncSession(engine) as session:
        for nature in ("official", "meeting", "inspection", "reception", "courier"):
            for p in range(1, 36):
                allowed[(nature, p)] = await allowed_body_types(session, nature, p)
    await engine.dispose()

    rng = random.Random(data.seed)
    natures = ("official", "meeting", "inspection", "reception", "courier")
    nature_w = (0.45, 0.3, 0.12, 0.1, 0.03)
    start_local = datetime.combine(day, datetime.min.time(), LOCAL_TZ)
    trips = []
    for i in range(data.requests):
        unit = rng.choice(units)
        nature = rng.choices(natures, nature_w)[0]
        size = rng.random()
        passengers = (
            rng.randint(1, 4)
            if size < 0.8
            else rng.randint(5, 7)
            if size < 0.95
            else rng.randint(8, 15)
            if size < 0.99
            else rng.randint(20, 35)
        )
        if nature == "courier":
            passengers = rng.randint(1, 2)
        origin = _offset(rng, unit["lat"], unit["lon"], 1.0)
        roll = rng.random()
        dest_county = unit["county"]
        if roll < 0.6:
            dest = _offset(rng, unit["clat"], unit["clon"], 6.0)
        elif roll < 0.85:
            dest = _offset(rng, centre["lat"], centre["lon"], 2.5)
            dest_county = ""  # the city centre: counted in the unit's county for the chain
        else:
            dest_county = rng.choice(counties)
            dest = _offset(rng, *county_at[dest_county], 4.0)
        round_trip = rng.random() < 0.6
        dep = start_local + timedelta(minutes=_departure_min(rng))
        if round_trip:
            hours = 8.0 if rng.random() < 0.08 else rng.choice((1.0, 1.5, 2.0, 2.5, 3.0, 4.0))
        else:
            hours = rng.choice((0.5, 0.75, 1.0, 1.5))
        ret = dep + timedelta(hours=hours)
        urgency = rng.choices(("normal", "urgent", "emergency"), (0.94, 0.05, 0.01))[0]
        kind = (
            "emergency"
            if urgency == "emergency"
            else "cross_county"
            if dest_county and dest_county != unit["county"]
            else "in_county"
        )
        trips.append(
            (
                unit["requester"],
                unit["id"],
                passengers,
                [f"乘车人{j + 1}" for j in range(min(passengers, 3))],
                nature,
                f"{PURPOSE} #{i}",
                origin[1],
                origin[0],
                unit["name"],
                dest[1],
                dest[0],
                f"目的地 {i}",
                dep.astimezone(UTC),
                ret.astimezone(UTC),
                round_trip,
                urgency,
                kind,
                allowed[(nature, passengers)],
                planned_km([origin, dest], round_trip),
                chains[kind],
                kind == "emergency",
            )
        )
    await conn.execute(
        "CREATE TEMP TABLE bench_trips (requester_id bigint, unit_id bigint, passengers int,"
        " passenger_names text[], nature text, purpose text, olon float8, olat float8,"
        " oaddr text, dlon float8, dlat float8, daddr text, dep timestamptz, ret timestamptz,"
        " round_trip bool, urgency text, kind text, allowed text[], km float8, chain bigint,"
        " dispatch_first bool) ON COMMIT DROP"
    )
    await conn.copy_records_to_table("bench_trips", records=trips)
    await conn.execute(
        """
        WITH t AS (
            INSERT INTO trip_requests (requester_id, unit_id, passengers, passenger_names,
                nature, purpose, origin, origin_address, destination, destination_address,
                departure_at, return_at, round_trip, urgency, kind, allowed_body_types,
                planned_km, state, chain_id, dispatch_first, approval_status, approval_round,
                created_at)
            SELECT requester_id, unit_id, passengers, passenger_names, nature, purpose,
                   ST_SetSRID(ST_MakePoint(olon, olat), 4326), oaddr,
                   ST_SetSRID(ST_MakePoint(dlon, dlat), 4326), daddr, dep, ret, round_trip,
                   urgency, kind, allowed, km, 'approved', chain, dispatch_first, 'approved', 1,
                   now() - interval '1 day'
            FROM bench_trips ORDER BY dep
            RETURNING id, created_at)
        INSERT INTO approval_steps (trip_id, round, seq, level, state, assignee_id,
                                    timeout_hours, due_at, acted_by, acted_at, comment)
        SELECT id, 1, 1, 'unit', 'approved', $1, 4, created_at + interval '4 hours', $1,
               created_at + interval '1 hour', 'bench'
        FROM t
        """,
        approver,
    )
    await conn.execute("ANALYZE trip_requests; ANALYZE approval_steps; ANALYZE trip_assignments")
    mix = Counter(t[16] for t in trips)
    return {
        "requests": len(trips),
        "units": len({t[1] for t in trips}),
        "counties": len(counties),
        **{f"kind {k}": n for k, n in sorted(mix.items())},
        "round trips": sum(1 for t in trips if t[14]),
        "passengers > 4": sum(1 for t in trips if t[2] > 4),
    }


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class Result:
    requests: int = 0
    vehicles: int = 0
    vehicles_planned: int = 0
    drivers: int = 0
    snapshot_s: float = 0.0
    solve_s: float = 0.0
    region: bool = False
    parts: str = ""
    served: int = 0
    vehicles_used: int = 0
    distance_km: float = 0.0
    unserved: Counter[str] | None = None
    accept_s: float = 0.0
    accepted: int = 0
    refused: Counter[str] | None = None
    bookings: int = 0
    problems: list[str] | None = None
    unfinished: bool = False


def _solve_plain(snap: dict[str, Any], time_limit_s: float, seed: int) -> dict[str, Any]:
    """The baseline in the child: one `optimizer.solve` over the whole scope."""
    from dispatch.optimize.problem import solve_snapshot

    return solve_snapshot(snap, time_limit_s, seed, region_min_requests=sys.maxsize)


async def _check_db(
    conn: asyncpg.Connection, items: list[dict[str, Any]], results: list[dict[str, Any]]
) -> tuple[int, list[str]]:
    problems = []
    for col in ("vehicle_id", "driver_id"):
        n = await conn.fetchval(
            f"""
            SELECT count(*) FROM trip_assignments a JOIN trip_assignments b
              ON a.{col} = b.{col} AND a.id < b.id
             AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
            WHERE a.state IN ('assigned', 'accepted', 'departed')
              AND b.state IN ('assigned', 'accepted', 'departed')
            """
        )
        if n:
            problems.append(f"{n} overlapping active bookings of one {col[:-3]}")
    rows = await conn.fetch(
        "SELECT t.id, t.state, a.vehicle_id, a.driver_id, a.source, a.id AS aid"
        " FROM trip_requests t LEFT JOIN trip_assignments a ON a.trip_id = t.id"
        " AND a.state IN ('assigned', 'accepted', 'departed') WHERE t.purpose LIKE $1",
        PURPOSE + "%",
    )
    by_trip = {r["id"]: r for r in rows}
    bookings = sum(1 for r in rows if r["aid"] is not None and r["source"] == "optimizer")
    proposed = {i["trip_id"]: i for i in items}
    bad_ok = bad_refused = 0
    for res in results:
        r = by_trip.get(res["trip_id"])
        item = proposed[res["trip_id"]]
        if res["ok"]:
            if not (
                r is not None
                and r["state"] == "assigned"
                and r["aid"] == res["assignment_id"]
                and r["vehicle_id"] == item["vehicle_id"]
                and r["driver_id"] == item["driver_id"]
            ):
                bad_ok += 1
        elif r is None or r["state"] != "approved" or r["aid"] is not None:
            bad_refused += 1
    if bad_ok:
        problems.append(f"{bad_ok} accepted trips not assigned with the proposed booking")
    if bad_refused:
        problems.append(f"{bad_refused} refused trips not left approved and unbooked")
    if bookings != sum(1 for r in results if r["ok"]):
        problems.append(f"{bookings} optimizer bookings for {len(results)} accepted items")
    return bookings, problems


async def measure(
    settings: Settings,
    data: Data,
    day: date,
    time_limit_s: float,
    *,
    profile: bool,
    max_solve_s: float,
) -> tuple[Result, dict[str, Any]]:
    import httpx

    from dispatch.optimize.worker import _warm, make_executor, run_next
    from fleet.db import make_engine, make_sessionmaker, unit_of_work
    from web.app import create_app

    res = Result()
    executor = make_executor(1)
    await asyncio.wrap_future(executor.submit(_warm))  # spawn + import OR-Tools before timing
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=None
            ) as client:
                r = await client.post(
                    "/api/v1/auth/login", json={"username": DISPATCHER, "password": PASSWORD}
                )
                r.raise_for_status()
                auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
                conn = await asyncpg.connect(settings.db.owner().dsn())
                city_id = await conn.fetchval("SELECT id FROM orgs WHERE code = $1", CITY)
                await conn.close()
                body = {"org_id": city_id, "day": day.isoformat(), "time_limit_s": time_limit_s}
                t = time.perf_counter()
                r = await client.post("/api/v1/dispatch/proposals", json=body, headers=auth)
                res.snapshot_s = time.perf_counter() - t
                assert r.status_code == 202, r.text
                run = r.json()
                counts = run["counts"]
                res.requests = counts["requests"]
                res.vehicles = counts["vehicles"]
                res.vehicles_planned = counts["vehicles_planned"]
                res.drivers = counts["drivers"]
                _echo(
                    f"snapshot {res.snapshot_s:.2f}s: {res.requests} requests,"
                    f" {res.vehicles} vehicles ({res.vehicles_planned} with a driver),"
                    f" {res.drivers} drivers, {counts['bookings']} bookings"
                )

                engine = make_engine(settings.db, application_name="bench-worker")
                factory = make_sessionmaker(engine)
                t = time.perf_counter()
                try:
                    ran = await asyncio.wait_for(
                        run_next(lambda: unit_of_work(factory), executor, worker="bench"),
                        timeout=max_solve_s,
                    )
                except TimeoutError:
                    res.solve_s = time.perf_counter() - t
                    res.problems = [f"solve did not finish in {max_solve_s:g}s (child killed)"]
                    res.unfinished = True
                    _kill(executor)
                    _echo(res.problems[0])
                    snap = await _snapshot(settings, run["id"])
                    res.region = _region_expected(snap)
                    return res, snap
                finally:
                    await engine.dispose()
                res.solve_s = time.perf_counter() - t
                assert ran == run["id"], (ran, run["id"])
                r = await client.get(f"/api/v1/dispatch/proposals/{run['id']}", headers=auth)
                prop = r.json()
                assert prop["state"] == "done", prop.get("error")
                res.parts = prop["stats"].get("parts", "")
                res.region = "parts" in prop["stats"]
                res.served = len(prop["items"])
                res.vehicles_used = prop["vehicles_used"] or 0
                res.distance_km = prop["distance_km"] or 0.0
                res.unserved = Counter(u["reason"] for u in prop["unserved"])
                _echo(
                    f"solve {res.solve_s:.1f}s ({'region' if res.region else 'one solve'}):"
                    f" {res.served} served by {res.vehicles_used} vehicles,"
                    f" unserved {dict(res.unserved)}"
                )

                prof = cProfile.Profile() if profile else None
                t = time.perf_counter()
                if prof:
                    prof.enable()
                r = await client.post(
                    f"/api/v1/dispatch/proposals/{run['id']}/accept", json={}, headers=auth
                )
                if prof:
                    prof.disable()
                res.accept_s = time.perf_counter() - t
                assert r.status_code == 200, r.text
                out = r.json()
                res.accepted = out["accepted"]
                res.refused = Counter(
                    (x.get("error") or {}).get("code", "?") for x in out["results"] if not x["ok"]
                )
                _echo(
                    f"accept {res.accept_s:.1f}s: {res.accepted} accepted,"
                    f" refused {dict(res.refused)}"
                )
                if prof:
                    s = io.StringIO()
                    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(40)
                    _echo(s.getvalue())
                conn = await asyncpg.connect(settings.db.owner().dsn())
                try:
                    res.bookings, res.problems = await _check_db(
                        conn, prop["items"], out["results"]
                    )
                finally:
                    await conn.close()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return res, await _snapshot(settings, run["id"])


async def _snapshot(settings: Settings, run_id: int) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.db.owner().dsn())
    try:
        snap = await conn.fetchval("SELECT problem FROM optimizer_runs WHERE id = $1", run_id)
        return dict(json.loads(snap))
    finally:
        await conn.close()


def _region_expected(snap: dict[str, Any]) -> bool:
    """Whether `solve_snapshot` takes region mode for this snapshot (as it decides)."""
    from dispatch.optimize.problem import REGION_MIN_REQUESTS

    zones = {r.get("zone") for r in snap["requests"]}
    return len(zones) > 1 and len(snap["requests"]) >= REGION_MIN_REQUESTS


def _kill(executor: Any) -> None:
    """End a solve that overran: the pool's child and the region workers it started."""
    import signal

    for proc in list(getattr(executor, "_processes", {}).values()):
        try:
            for child in _children(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.kill()
        except (OSError, ProcessLookupError):
            pass
    executor.shutdown(wait=False, cancel_futures=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


async def baseline(
    snap: dict[str, Any], time_limit_s: float, seed: int, max_solve_s: float
) -> Result:
    from dispatch.optimize.worker import _warm, make_executor

    res = Result(requests=len(snap["requests"]), vehicles_planned=len(snap["vehicles"]))
    executor = make_executor(1)
    try:
        await asyncio.wrap_future(executor.submit(_warm))
        t = time.perf_counter()
        job = asyncio.wrap_future(executor.submit(_solve_plain, snap, time_limit_s, seed))
        try:
            prop = await asyncio.wait_for(job, timeout=max_solve_s)
        except TimeoutError:
            res.solve_s = time.perf_counter() - t
            res.problems = [f"solve did not finish in {max_solve_s:g}s (child killed)"]
            res.unfinished = True
            _kill(executor)
            return res
        res.solve_s = time.perf_counter() - t
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    res.served = len(prop["items"])
    res.vehicles_used = prop["vehicles_used"] or 0
    res.distance_km = prop["distance_km"] or 0.0
    res.unserved = Counter(u["reason"] for u in prop["unserved"])
    res.region = "parts" in prop["stats"]
    return res


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}"


def _table(cur: Result, base: Result | None) -> list[str]:
    def fmt(c: Counter[str] | None) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) if c else "none"

    def solved(r: Result | None, text: str) -> str:
        return "" if r is None else "–" if r.unfinished else text

    def mode(r: Result | None) -> str:
        if r is None:
            return ""
        name = f"region, parts {r.parts}" if r.region and r.parts else "region"
        return (name if r.region else "one solve") + (" (unfinished)" if r.unfinished else "")

    rows: list[tuple[str, str, str]] = [
        ("requests", f"{cur.requests}", f"{base.requests}" if base else ""),
        (
            "vehicles in scope / planned",
            f"{cur.vehicles} / {cur.vehicles_planned}",
            f"– / {base.vehicles_planned}" if base else "",
        ),
        (
            "snapshot (POST /proposals) s",
            f"{cur.snapshot_s:.2f}",
            "(same snapshot)" if base else "",
        ),
        (
            "solve wall s",
            f"{cur.solve_s:.1f} (run_next)" + (" UNFINISHED" if cur.unfinished else ""),
            (f"{base.solve_s:.1f} (child)" + (" UNFINISHED" if base.unfinished else ""))
            if base
            else "",
        ),
        ("mode", mode(cur), mode(base)),
        (
            "served / unserved",
            solved(cur, f"{cur.served} / {cur.requests - cur.served}"),
            solved(base, f"{base.served} / {base.requests - base.served}" if base else ""),
        ),
        (
            "unserved by reason",
            solved(cur, fmt(cur.unserved)),
            solved(base, fmt(base.unserved if base else None)),
        ),
        (
            "vehicles used",
            solved(cur, f"{cur.vehicles_used}"),
            solved(base, f"{base.vehicles_used}" if base else ""),
        ),
        (
            "distance km",
            solved(cur, f"{cur.distance_km:,.0f}"),
            solved(base, f"{base.distance_km:,.0f}" if base else ""),
        ),
        ("accept (POST accept) s", solved(cur, f"{cur.accept_s:.1f}"), ""),
        (
            "accepted / refused",
            solved(cur, f"{cur.accepted} / {sum((cur.refused or {}).values())}"),
            "",
        ),
        ("refused by code", solved(cur, fmt(cur.refused)), ""),
        ("bookings created", solved(cur, f"{cur.bookings}"), ""),
        (
            "checks",
            "OK: no double booking, accepted = assigned"
            if not cur.problems
            else "; ".join(cur.problems),
            "",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    head = f"{'':<{w0}}  {'auto-assign (production path)':<{w1}}  baseline: plain solve"
    return [head] + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]


def main(argv: list[str] | None = None) -> None:
    d = Data()
    ap = argparse.ArgumentParser(
        prog="python -m bench.auto_assign",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--requests", type=int, default=d.requests, help="approved trip requests")
    ap.add_argument("--vehicles", type=int, default=d.vehicles, help="region seed's vehicles")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the requests' mix")
    ap.add_argument("--time-limit", type=float, default=50.0, help="time_limit_s of the run")
    ap.add_argument(
        "--max-solve",
        type=float,
        default=300.0,
        help="seconds after which a solve is called unfinished and its child killed",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain-solve baseline")
    ap.add_argument("--profile-accept", action="store_true", help="cProfile the accept call")
    ap.add_argument("--rebuild", action="store_true", help="rebuild even if the database exists")
    ap.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = ap.parse_args(argv)
    data = Data(vehicles=args.vehicles, requests=args.requests, seed=args.seed)
    name = data.db_name()
    settings = get_settings().model_copy(deep=True)
    settings.db.name = name
    try:
        if args.rebuild or not asyncio.run(database_exists(name, marker="bench_meta")):
            _echo(f"building {name} …")
            t = time.perf_counter()
            asyncio.run(build(data))
            _echo(f"built in {time.perf_counter() - t:.0f}s")
        else:
            _echo(f"reusing {name}")
        day = datetime.now(LOCAL_TZ).date() + timedelta(days=1)

        async def _file() -> dict[str, int]:
            conn = await asyncpg.connect(settings.db.owner().dsn())
            try:
                async with conn.transaction():
                    return await file_requests(conn, data, day)
            finally:
                await conn.close()

        t = time.perf_counter()
        mix = asyncio.run(_file())
        _echo(f"filed for {day}: {mix} ({time.perf_counter() - t:.1f}s)")
        cur, snap = asyncio.run(
            measure(
                settings,
                data,
                day,
                args.time_limit,
                profile=args.profile_accept,
                max_solve_s=args.max_solve,
            )
        )
        base = None
        if not args.no_baseline:
            base = asyncio.run(baseline(snap, args.time_limit, 0, args.max_solve))
            _echo(f"baseline solve {base.solve_s:.1f}s: {base.served} served")
        _echo(f"\nmachine: {_machine()}")
        _echo(f"city {CITY} (Nanning) as {DISPATCHER}, day {day}, time_limit_s {args.time_limit:g}")
        for line in _table(cur, base):
            _echo(line)
        if cur.problems:
            sys.exit(1)
    finally:
        if args.drop:
            asyncio.run(drop_database(name))
            _echo(f"dropped {name}")


if __name__ == "__main__":
    main()
