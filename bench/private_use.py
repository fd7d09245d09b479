"""Benchmark: private-use detection (公车私用) at region scale, as the dispatch worker runs it.

    python -m bench.private_use                      # build (or reuse) the database, measure
    python -m bench.private_use --background-rows 50000000 --rounds 6
    python -m bench.private_use --explain            # also EXPLAIN (ANALYZE, BUFFERS) round 1
    python -m bench.private_use --drop               # drop the database afterwards

The database (``privateuse_bench_<hash of the data parameters>``, reused when it exists) is
migrated with the project's migrations and seeded with the region (``dispatch.seed``,
26,638 vehicles by default). One UTC day partition of ``positions`` is then filled inside
PostgreSQL (INSERT … SELECT over generate_series into an unlogged stage, primary key built
after loading, set logged, attached — as ``bench.track_query`` does), rows in arrival order
(every vehicle at t, then t + 10 s) as the ingest writes them:

* ``--background-rows`` earlier in the day (every vehicle pinging, mixed speeds), so the
  partition is as large as it is late in the day;
* the scenario span (the worker's first window and every round after it): a share
  ``--moving`` of the vehicles drives throughout, the rest is parked (speed 0, ignition
  off). Of the movers, most are covered by a departed booking (``covered``), some by the
  departure → completion rule although their planned window has passed (``late``), some
  finished their trip 5 minutes before the first round and drove on (``ended``: uncovered
  after completion), and ``--private`` drive with no booking at all (``private``).

Then the worker's rounds are replayed on a virtual clock: round k runs at T0 + k × interval
over ``[previous round − lookback, now)`` (the first over ``[T0 − 2 × lookback, T0)``, as the
worker's first round after start), each in its own transaction through
``dispatch.supervision.catalog.run_checks`` (private use, overtime, deviation), committed, then the
live-bus publications flushed. Each variant (the code as it was before the region-scale
work, and the current code) runs the same rounds from an empty alerts table. Correctness:
after the rounds, the vehicles with a private_use alert are exactly the ``private`` and
``ended`` classes, one alert each (later rounds extend, never duplicate).

"db CPU s" is the database's CPU for the round: the backend plus any parallel workers it
started (reaped by the postmaster: its children's CPU), from /proc — so it needs the
database on this machine; other sessions ending during the round would be counted too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bench import private_use_baseline
from dispatch.supervision import catalog, private_use
from dispatch.supervision.base import CheckReport, Rules
from fleet.config import get_settings
from fleet.db import database_exists, drop_database, recreate_database
from telematics.rules.moving import MOVING_MIN_SPEED_KMH

PREFIX = "privateuse_bench_"
# History alerts are created "at" this time, so a run can delete what it raised and keep them.
T_HIST = datetime(2000, 1, 1, tzinfo=UTC)
CLASSES = ("parked", "covered", "late", "ended", "private")
ALERTED = ("ended", "private")


def _echo(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class Data:
    """What the database holds; its hash names the database, so other values build another."""

    vehicles: int = 26_638
    interval_s: int = 10
    background_rows: int = 30_000_000
    moving: float = 0.25
    private: float = 0.02  # share of movers driving with no booking
    ended: float = 0.01  # share of movers whose trip ended 5 min before the first round
    late: float = 0.03  # share of movers past their planned window but not yet completed
    lookback_min: int = 10
    worker_interval_s: int = 60
    rounds: int = 4
    seed: int = 7

    def db_name(self) -> str:
        key = json.dumps(asdict(self), sort_keys=True).encode()
        return PREFIX + hashlib.sha1(key).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# building the database


_BACKGROUND = """
INSERT INTO {tbl} (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg, odometer_km,
                   acc, fix, sats, flags, received_at)
SELECT v, t, 'GX' || lpad(v::text, 8, '0'),
       ST_SetSRID(ST_MakePoint(
           104.5 + 7.5 * ((v * 0.6180339887) - floor(v * 0.6180339887))
                 + 0.03 * sin(e / 2000.0 + v),
           21.5 + 4.8 * ((v * 0.7548776662) - floor(v * 0.7548776662))
                 + 0.03 * cos(e / 2000.0 + v)), 4326),
       greatest(0, 40 * sin(e / 900.0 + v))::real,
       ((e / 10 + v)::bigint % 360)::real,
       v * 10 + e / 100.0, sin(e / 900.0 + v) > 0, true, 9, 0, t + interval '1 second'
FROM generate_series($1::timestamptz, $2::timestamptz, make_interval(secs => $3)) AS t,
     LATERAL (SELECT extract(epoch FROM t)::double precision AS e) AS x,
     generate_series(1, $4::int) AS v
"""

# Movers head north-east from their depot at 30-60 km/h (≈ 1e-4 deg/s); parked ones sit at
# the depot with ignition off. Ordered by (t, vehicle): the ingest's arrival order.
_SCENARIO = """
INSERT INTO {tbl} (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg, odometer_km,
                   acc, fix, sats, flags, received_at)
SELECT c.vehicle_id, t, 'GX' || lpad(c.vehicle_id::text, 8, '0'),
       CASE WHEN c.cls = 'parked' THEN ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326)
            ELSE ST_SetSRID(ST_MakePoint(c.lon + 7e-5 * s, c.lat + 7e-5 * s), 4326) END,
       CASE WHEN c.cls = 'parked' THEN 0 ELSE 45 + 15 * sin(s / 300.0 + c.vehicle_id) END,
       45, c.vehicle_id * 10 + s / 100.0, c.cls <> 'parked', true, 9, 0,
       t + interval '1 second'
FROM generate_series($1::timestamptz, $2::timestamptz, make_interval(secs => $3)) AS t,
     LATERAL (SELECT extract(epoch FROM t - $1::timestamptz) AS s) AS x,
     bench_vehicle_class c
ORDER BY t, c.vehicle_id
"""


@dataclass(frozen=True)
class Clock:
    """The virtual times of a built database."""

    day: datetime  # the UTC day whose partition holds everything
    t0: datetime  # the first round
    w0: datetime  # first scenario ping (before the first round's window)
    bg0: datetime  # first background ping

    @staticmethod
    def of(data: Data, day: datetime) -> Clock:
        end = day + timedelta(hours=23, minutes=50)
        t0 = end - timedelta(seconds=data.rounds * data.worker_interval_s)
        w0 = t0 - timedelta(minutes=2 * data.lookback_min + 5)
        per_min = data.vehicles * 60 / data.interval_s
        bg0 = max(day, w0 - timedelta(minutes=data.background_rows / per_min))
        return Clock(day, t0, w0, bg0)

    @property
    def end(self) -> datetime:
        return self.day + timedelta(hours=23, minutes=50)


async def build(data: Data) -> Clock:
    """Migrate, seed, classify vehicles, fill one day partition, book the covered movers."""
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
            await seed(conn, SeedConfig(vehicles=data.vehicles, seed=3, terminal_key="bench"))
        _echo(f"seed: {data.vehicles:,} vehicles, {time.perf_counter() - t:.0f}s")
        now = datetime.now(UTC)
        day = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=1)
        clock = Clock.of(data, day)
        await _classify(conn, data)
        await _fill(conn, data, clock)
        await _book(conn, clock)
        await conn.execute(
            "CREATE TABLE bench_meta (data jsonb NOT NULL, day timestamptz NOT NULL);ANALYZE"
        )
        await conn.execute(
            "INSERT INTO bench_meta VALUES ($1::jsonb, $2)", json.dumps(asdict(data)), day
        )
        return clock
    finally:
        await conn.close()


async def _classify(conn: asyncpg.Connection, data: Data) -> None:
    rng = random.Random(data.seed)
    rows = await conn.fetch("SELECT id, ST_X(depot) AS lon, ST_Y(depot) AS lat FROM vehicles")
    classes: list[tuple[int, str, float, float]] = []
    for r in rows:
        cls = "parked"
        if rng.random() < data.moving:
            x = rng.random()
            cls = (
                "private"
                if x < data.private
                else "ended"
                if x < data.private + data.ended
                else "late"
                if x < data.private + data.ended + data.late
                else "covered"
            )
        classes.append((r["id"], cls, r["lon"], r["lat"]))
    await conn.execute(
        "CREATE TABLE bench_vehicle_class (vehicle_id bigint PRIMARY KEY, cls text NOT NULL,"
        " lon float8 NOT NULL, lat float8 NOT NULL)"
    )
    await conn.copy_records_to_table("bench_vehicle_class", records=classes)
    counts = {c: sum(1 for _, k, _, _ in classes if k == c) for c in CLASSES}
    _echo("classes: " + ", ".join(f"{c} {n:,}" for c, n in counts.items()))


async def _fill(conn: asyncpg.Connection, data: Data, clock: Clock) -> None:
    await conn.execute("SET maintenance_work_mem = '512MB'; SET synchronous_commit = off")
    tbl = f"positions_{clock.day:%Y%m%d}"
    stage = f"{tbl}_load"
    hi = clock.day + timedelta(days=1)
    await conn.execute(f"ALTER TABLE positions DETACH PARTITION {tbl}")
    await conn.execute(f"DROP TABLE {tbl}")
    await conn.execute(
        f"CREATE UNLOGGED TABLE {stage} (LIKE positions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    step = timedelta(seconds=data.interval_s)
    t = time.perf_counter()
    if clock.bg0 < clock.w0:
        await conn.execute(
            _BACKGROUND.format(tbl=stage),
            clock.bg0,
            clock.w0 - step,
            float(data.interval_s),
            data.vehicles,
        )
    # The seed numbers vehicles 1..N; the background formula addresses them by number.
    n_bg = await conn.fetchval(f"SELECT count(*) FROM {stage}")
    _echo(f"background: {n_bg:,} rows from {clock.bg0:%H:%M} UTC, {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    await conn.execute(_SCENARIO.format(tbl=stage), clock.w0, clock.end, float(data.interval_s))
    n_all = await conn.fetchval(f"SELECT count(*) FROM {stage}")
    _echo(
        f"scenario: {n_all - n_bg:,} rows {clock.w0:%H:%M}-{clock.end:%H:%M} UTC,"
        f" {time.perf_counter() - t:.0f}s"
    )
    t = time.perf_counter()
    await conn.execute(f"ALTER TABLE {stage} ADD PRIMARY KEY (vehicle_id, ts)")
    await conn.execute(f"ALTER TABLE {stage} SET LOGGED")
    await conn.execute(f"ALTER TABLE {stage} RENAME TO {tbl}")
    await conn.execute(f"ALTER INDEX {stage}_pkey RENAME TO {tbl}_pkey")
    await conn.execute(
        f"ALTER TABLE positions ATTACH PARTITION {tbl}"
        f" FOR VALUES FROM ('{clock.day.isoformat()}') TO ('{hi.isoformat()}')"
    )
    await conn.execute(f"VACUUM ANALYZE {tbl}")
    _echo(f"primary key, logged, attached (BRIN built), vacuumed: {time.perf_counter() - t:.0f}s")


_BOOK = """
WITH movers AS (
    SELECT c.vehicle_id, c.cls, c.lon, c.lat, v.unit_id,
           row_number() OVER (ORDER BY c.vehicle_id) AS n
    FROM bench_vehicle_class c JOIN vehicles v ON v.id = c.vehicle_id
    WHERE c.cls IN ('covered', 'late', 'ended')
),
drivers AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM drivers
),
trips AS (
    INSERT INTO trip_requests (requester_id, unit_id, passengers, nature, purpose, origin,
                               origin_address, destination, destination_address, departure_at,
                               return_at, kind, allowed_body_types, planned_km, state)
    SELECT (SELECT min(id) FROM users), m.unit_id, 1, 'official', 'bench ' || m.vehicle_id,
           ST_SetSRID(ST_MakePoint(m.lon, m.lat), 4326), 'depot',
           ST_SetSRID(ST_MakePoint(m.lon + 0.1, m.lat + 0.1), 4326), 'bench',
           m.starts_at, m.ends_at, 'in_county', '{sedan,suv,mpv,minibus,bus}', 20,
           CASE WHEN m.cls = 'ended' THEN 'completed' ELSE 'departed' END
    FROM (SELECT *, CASE cls WHEN 'late' THEN $1::timestamptz - interval '3 hours'
                             ELSE $1::timestamptz - interval '1 hour' END AS starts_at,
                    CASE cls WHEN 'covered' THEN $2::timestamptz + interval '2 hours'
                             WHEN 'late' THEN $1::timestamptz - interval '30 minutes'
                             ELSE $3::timestamptz END AS ends_at
          FROM movers) m
    RETURNING id, unit_id, departure_at, return_at, state, purpose
)
INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, starts_at, ends_at, state,
                              departed_at, completed_at)
SELECT t.id, m.vehicle_id, d.id, t.departure_at, t.return_at, t.state, t.departure_at,
       CASE WHEN t.state = 'completed' THEN t.return_at END
FROM trips t
JOIN movers m ON 'bench ' || m.vehicle_id = t.purpose
JOIN drivers d ON d.n = m.n
"""


async def _book(conn: asyncpg.Connection, clock: Clock) -> None:
    movers = await conn.fetchval(
        "SELECT count(*) FROM bench_vehicle_class WHERE cls IN ('covered', 'late', 'ended')"
    )
    drivers = await conn.fetchval("SELECT count(*) FROM drivers")
    if drivers < movers:
        sys.exit(f"{movers} booked movers need as many drivers; the seed made {drivers}")
    ended_at = clock.t0 - timedelta(minutes=5)
    await conn.execute(
        "INSERT INTO users (username, password_hash, display_name, org_id)"
        " SELECT 'bench.requester', '!', 'bench', min(id) FROM orgs"
        " WHERE NOT EXISTS (SELECT 1 FROM users)"
    )
    await conn.execute(_BOOK, clock.w0, clock.end, ended_at)
    n = await conn.fetchval("SELECT count(*) FROM trip_assignments")
    _echo(f"bookings: {n:,} (departed, past planned window, completed before the first round)")


# ---------------------------------------------------------------------------------------------
# measuring


def _proc_cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime (or, with children, the reaped children's) of a local process, in s."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the ")": state is index 0, so utime/stime are 11/12, cutime/cstime 13/14
    i = 13 if children else 11
    return (int(fields[i]) + int(fields[i + 1])) / os.sysconf("SC_CLK_TCK")


def _postmaster_pid() -> int | None:
    try:
        out = subprocess.run(
            ["pgrep", "-o", "-x", "postgres"], capture_output=True, text=True, check=False
        ).stdout.split()
        return int(out[0]) if out else None
    except (OSError, ValueError):
        return None


@dataclass
class Round:
    variant: str
    n: int
    since: datetime
    until: datetime
    pings: int
    moving: int
    new_alerts: int
    extended: int
    overtime: int
    wall_s: float
    private_s: float
    db_cpu_s: float


Detector = Callable[
    [AsyncSession, datetime, datetime, datetime, Rules, CheckReport], Awaitable[None]
]


async def _run_rounds(data: Data, clock: Clock, variant: str, detector: Detector) -> list[Round]:
    """The worker's rounds (dispatch.cli.run_worker) on the virtual clock, private-use
    detection swapped for `detector`."""
    from dispatch import notify
    from fleet.db import make_engine, make_sessionmaker, unit_of_work

    settings = get_settings()
    engine = make_engine(settings.db, application_name="bench", name=data.db_name())
    factory = make_sessionmaker(engine)
    postmaster = _postmaster_pid()
    rounds: list[Round] = []
    original = catalog.RULES
    private_s = 0.0

    async def timed(*args: object) -> None:
        nonlocal private_s
        t = time.perf_counter()
        await detector(*args)  # type: ignore[arg-type]
        private_s = time.perf_counter() - t

    catalog.RULES = tuple(timed if r is private_use.detect else r for r in original)
    try:
        async with unit_of_work(factory) as session:
            # Only what earlier runs raised; the history stays.
            await session.execute(text("DELETE FROM alerts WHERE created_at > :d"), {"d": T_HIST})
        lookback = timedelta(minutes=data.lookback_min)
        last = clock.t0 - lookback
        for k in range(data.rounds + 1):
            now = clock.t0 + timedelta(seconds=k * data.worker_interval_s)
            since = last - lookback
            async with unit_of_work(factory) as session:
                counts = (
                    await session.execute(
                        text(
                            "SELECT count(*), count(*) FILTER (WHERE speed_kmh >= :moving)"
                            " FROM positions WHERE ts >= :s AND ts < :u"
                        ),
                        {"s": since, "u": now, "moving": MOVING_MIN_SPEED_KMH},
                    )
                ).one()
                before = await _alert_state(session)
            backend = 0
            async with factory() as s2:
                backend = int((await s2.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            cpu0 = _proc_cpu_s(backend) + (_proc_cpu_s(postmaster, True) if postmaster else 0)
            t = time.perf_counter()
            async with unit_of_work(factory) as session:
                pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                if pid != backend:  # the pool handed out another connection
                    cpu0 += _proc_cpu_s(pid) - _proc_cpu_s(backend)
                    backend = pid
                report = await catalog.run_checks(session, since, now, now=now)
            await notify.flush_pending()
            wall = time.perf_counter() - t
            cpu1 = _proc_cpu_s(backend) + (_proc_cpu_s(postmaster, True) if postmaster else 0)
            async with factory() as session:
                after = await _alert_state(session)
            rounds.append(
                Round(
                    variant,
                    k + 1,
                    since,
                    now,
                    int(counts[0]),
                    int(counts[1]),
                    report.private_use,
                    sum(1 for v, e in after["ends"].items() if before["ends"].get(v, e) != e),
                    report.trip_overtime,
                    wall,
                    private_s,
                    cpu1 - cpu0,
                )
            )
            last = now
    finally:
        catalog.RULES = original
        await engine.dispose()
    return rounds


async def _alert_state(session: AsyncSession) -> dict[str, dict[int, object]]:
    rows = (
        await session.execute(text("SELECT id, ended_at FROM alerts WHERE kind = 'private_use'"))
    ).all()
    return {"ends": {int(r[0]): r[1] for r in rows}}


async def _verify(data: Data, clock: Clock) -> list[str]:
    """Alerted vehicles == the uncovered movers, one alert each, ending at the last round."""
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=data.db_name()))
    try:
        expected = {
            r[0]
            for r in await conn.fetch(
                "SELECT vehicle_id FROM bench_vehicle_class WHERE cls = ANY($1)", list(ALERTED)
            )
        }
        rows = await conn.fetch(
            "SELECT vehicle_id, count(*) AS n, min(started_at) AS s, max(ended_at) AS e"
            " FROM alerts WHERE kind = 'private_use' AND created_at > $1 GROUP BY vehicle_id",
            T_HIST,
        )
        got = {r["vehicle_id"] for r in rows}
        problems = []
        if got != expected:
            problems.append(
                f"alerted {len(got)} vehicles, expected {len(expected)}:"
                f" {len(got - expected)} not expected, {len(expected - got)} missed"
            )
        dup = [r["vehicle_id"] for r in rows if r["n"] != 1]
        if dup:
            problems.append(f"{len(dup)} vehicles with more than one private_use alert")
        last_until = clock.t0 + timedelta(seconds=data.rounds * data.worker_interval_s)
        step = timedelta(seconds=data.interval_s)
        stale = [r["vehicle_id"] for r in rows if r["e"] < last_until - step]
        if stale:
            problems.append(f"{len(stale)} alerts not extended to the last round")
        return problems
    finally:
        await conn.close()


async def _explain(
    data: Data, clock: Clock, detector_sql: str, params: dict[str, object], jit: bool
) -> str:
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=data.db_name()))
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            # as in round 1 (rolled back below)
            await conn.execute("DELETE FROM alerts WHERE created_at > $1", T_HIST)
            if not jit:
                await conn.execute("SET LOCAL jit = off")
            sql = "EXPLAIN (ANALYZE, BUFFERS) " + detector_sql
            # asyncpg wants $n placeholders; the SQLAlchemy text uses :name.
            names = sorted(params, key=len, reverse=True)
            order: list[str] = []
            for n in names:
                if f":{n}" in sql:
                    order.append(n)
                    sql = sql.replace(f":{n}", f"${len(order)}")
            rows = await conn.fetch(sql, *[params[n] for n in order])
            return "\n".join(r[0] for r in rows)
        finally:
            await tr.rollback()
    finally:
        await conn.close()


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}"


VARIANTS: dict[str, Detector] = {
    "before": private_use_baseline.detect_private_use,
    "current": private_use.detect,
}


_HISTORY = """
INSERT INTO alerts (kind, severity, vehicle_id, org_id, started_at, ended_at, location, message,
                    evidence, dedup_key, status, created_at)
SELECT CASE WHEN i % 5 = 0 THEN 'private_use' ELSE 'overspeed' END, 'warning', v.id,
       v.unit_id, s, s + interval '20 minutes', v.depot,
       'history', '{}'::jsonb, 'history:' || i, 'closed', $3
FROM generate_series(1, $1::int) AS i,
     LATERAL (SELECT $2::timestamptz - (i % 700) * interval '1 day'
                     - (i % 86400) * interval '1 second' AS s,
                     1 + (i::bigint * 7919) % $4::int AS vid) AS x
JOIN vehicles v ON v.id = x.vid
"""


async def _ensure_history(data: Data, clock: Clock, n: int) -> int:
    """`n` closed alerts of the past two years, one in five private_use, the rest overspeed
    (the table as it will be), so the check's look-ups of earlier alerts meet a real table."""
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=data.db_name()))
    try:
        have = await conn.fetchval("SELECT count(*) FROM alerts WHERE created_at <= $1", T_HIST)
        if have != n:
            await conn.execute("DELETE FROM alerts WHERE created_at <= $1", T_HIST)
            await conn.execute(_HISTORY, n, clock.day, T_HIST, data.vehicles)
            await conn.execute("VACUUM ANALYZE alerts")
        return n
    finally:
        await conn.close()


async def _partition_rows(data: Data, clock: Clock) -> tuple[int, str]:
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=data.db_name()))
    try:
        tbl = f"positions_{clock.day:%Y%m%d}"
        n = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE relname = $1", tbl)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size($1))", tbl)
        return int(n), str(size)
    finally:
        await conn.close()


async def _load_clock(data: Data) -> Clock | None:
    name = data.db_name()
    if not await database_exists(name):
        return None
    conn = await asyncpg.connect(get_settings().db.owner().dsn(name=name))
    try:
        if not await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL"):
            return None
        day = await conn.fetchval("SELECT day FROM bench_meta")
        return Clock.of(data, day) if day else None
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = Data()
    ap.add_argument("--vehicles", type=int, default=d.vehicles)
    ap.add_argument("--interval-s", type=int, default=d.interval_s, help="seconds between pings")
    ap.add_argument(
        "--background-rows",
        type=int,
        default=d.background_rows,
        help="rows earlier in the same day partition",
    )
    ap.add_argument("--moving", type=float, default=d.moving, help="share of vehicles moving")
    ap.add_argument("--private", type=float, default=d.private, help="share of movers unbooked")
    ap.add_argument("--ended", type=float, default=d.ended, help="share of movers driving on")
    ap.add_argument("--late", type=float, default=d.late, help="share of movers past plan")
    ap.add_argument("--lookback", type=int, default=d.lookback_min, help="worker --lookback (min)")
    ap.add_argument(
        "--worker-interval", type=int, default=d.worker_interval_s, help="worker --interval (s)"
    )
    ap.add_argument("--rounds", type=int, default=d.rounds, help="rounds after the first")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (each from an empty alerts table)",
    )
    ap.add_argument(
        "--history-alerts",
        type=int,
        default=1_000_000,
        help="closed alerts of earlier days in the table (1 in 5 private_use; not part of the key)",
    )
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE round 1's window")
    ap.add_argument("--rebuild", action="store_true", help="rebuild even if the database exists")
    ap.add_argument("--drop", action="store_true", help="drop the database afterwards")
    ap.add_argument("--min-free-gb", type=float, default=15.0)
    args = ap.parse_args()
    data = Data(
        vehicles=args.vehicles,
        interval_s=args.interval_s,
        background_rows=args.background_rows,
        moving=args.moving,
        private=args.private,
        ended=args.ended,
        late=args.late,
        lookback_min=args.lookback,
        worker_interval_s=args.worker_interval,
        rounds=args.rounds,
    )
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    name = data.db_name()
    try:
        clock = None if args.rebuild else asyncio.run(_load_clock(data))
        if clock is None:
            free_gb = shutil.disk_usage("/work").free / 1e9
            if free_gb < args.min_free_gb:
                sys.exit(f"only {free_gb:.0f} GB free on /work; need {args.min_free_gb:.0f} GB")
            _echo(f"building {name} …")
            t = time.perf_counter()
            clock = asyncio.run(build(data))
            _echo(f"built in {time.perf_counter() - t:.0f}s")
        else:
            _echo(f"reusing {name}")
        rows, size = asyncio.run(_partition_rows(data, clock))
        asyncio.run(_ensure_history(data, clock, args.history_alerts))
        results: list[Round] = []
        problems: dict[str, list[str]] = {}
        for v in variants:
            results += asyncio.run(_run_rounds(data, clock, v, VARIANTS[v]))
            problems[v] = asyncio.run(_verify(data, clock))
        _echo(f"\nmachine: {_machine()}")
        _echo(
            f"day partition {clock.day:%Y-%m-%d}: {rows:,} rows, {size}; {data.vehicles:,}"
            f" vehicles, {data.moving:.0%} moving, {args.history_alerts:,} earlier alerts;"
            f" worker --interval {data.worker_interval_s} --lookback {data.lookback_min};"
            f" first round at {clock.t0:%H:%M} UTC"
        )
        head = (
            f"{'variant':<9}{'round':>6}{'window':>14}{'pings':>11}{'moving':>10}"
            f"{'new':>6}{'ext':>6}{'overt':>6}{'wall s':>8}{'priv s':>8}{'db CPU s':>10}"
        )
        _echo(head)
        for r in results:
            win = f"{r.since:%H:%M}-{r.until:%H:%M}"
            _echo(
                f"{r.variant:<9}{r.n:>6}{win:>14}{r.pings:>11,}{r.moving:>10,}{r.new_alerts:>6}"
                f"{r.extended:>6}{r.overtime:>6}{r.wall_s:>8.2f}{r.private_s:>8.2f}"
                f"{r.db_cpu_s:>10.2f}"
            )
        _echo(
            "new = private_use alerts inserted, ext = existing ones extended, overt ="
            " trip_overtime; wall = the whole round (all rules, commit, bus), priv = private use"
        )
        for v, p in problems.items():
            _echo(
                f"{v}: "
                + ("correct (alerted = uncovered movers, one each)" if not p else "; ".join(p))
            )
        if args.explain:
            lookback = timedelta(minutes=data.lookback_min)
            rules = Rules()
            params: dict[str, object] = {
                "since": clock.t0 - 2 * lookback,
                "until": clock.t0,
                "speed": rules.moving_speed_kmh,
                "gap_s": rules.episode_gap_minutes * 60,
                "min_km": rules.private_min_km,
                "min_s": rules.private_min_minutes * 60,
                "max_pts": rules.evidence_points,
            }
            for v, sql, jit in (
                ("before", private_use_baseline.SQL.text, True),
                ("current", private_use._PRIVATE_USE.text, False),
            ):
                if v in variants:
                    _echo(f"\n{v}, round 1 window:\n")
                    _echo(asyncio.run(_explain(data, clock, sql, params, jit)))
        if any(problems.values()):
            sys.exit(1)
    finally:
        if args.drop:
            asyncio.run(drop_database(name))
            _echo(f"dropped {name}")


if __name__ == "__main__":
    main()
