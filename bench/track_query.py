"""Benchmark (d): one vehicle-day track from a positions table holding ≥ 50 million rows.

    python -m bench.track_query                 # generate (if needed), measure, drop
    python -m bench.track_query --keep          # keep the database for another run
    python -m bench.track_query --generate-only --keep   # the slow part, e.g. under nohup
    python -m bench.track_query --compare-repack --keep  # repack day 2 with `fleet positions
                                                         # repack`, then day 2 vs day 3 cold

A throw-away database (``fleet_live_trackbench``) is migrated with the project's migrations;
day partitions are filled inside PostgreSQL with INSERT … SELECT over generate_series, rows
interleaved in time order as the ingest writes them (all vehicles at t, then t + interval),
so one vehicle-day is spread over many heap pages as in production. The primary key is
built after loading and the partition is then attached. The measured call is the track API's
own code path: ``telematics.positions.track.fetch_track`` (partition pruning + PK range
scan) and the GeoJSON shaping, on random vehicles and days. "cold" = first read of that
vehicle-day (not in PostgreSQL's shared buffers; the OS page cache is not dropped), "warm" =
the same queries again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson

from bench.dbutil import percentile
from fleet.config import get_settings
from fleet.db import create_database, database_exists, drop_database, recreate_database
from fleet.registry.visibility import VehicleRef
from telematics.positions.track import fetch_track, track_geojson

DB = "fleet_live_trackbench"
FIRST_DAY = date(2026, 1, 5)


def _echo(msg: str) -> None:
    print(msg, flush=True)


_FILL = """
INSERT INTO {tbl} (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg, odometer_km,
                   acc, fix, sats, flags, received_at)
SELECT v, t, 'GX' || lpad(v::text, 8, '0'),
       ST_SetSRID(ST_MakePoint(
           104.5 + 7.5 * ((v * 0.6180339887) - floor(v * 0.6180339887))
                 + 0.03 * sin(e / 2000.0 + v),
           21.5 + 4.8 * ((v * 0.7548776662) - floor(v * 0.7548776662))
                 + 0.03 * cos(e / 2000.0 + v)), 4326),
       (40 + 30 * sin(e / 600.0 + v))::real,
       ((e / 10 + v)::bigint % 360)::real,
       v * 10 + e / 100.0, true, true, 9, 0, t + interval '1 second'
FROM generate_series($1::timestamptz, $2::timestamptz, make_interval(secs => $3)) AS t,
     LATERAL (SELECT extract(epoch FROM t)::double precision AS e) AS x,
     generate_series(1, $4::int) AS v
"""


async def generate(vehicles: int, days: int, interval_s: int) -> None:
    settings = get_settings()
    if not await database_exists(DB):
        from fleet.cli import migrate

        await create_database(DB)
        await asyncio.to_thread(migrate, settings.db.model_copy(update={"name": DB}))
    conn = await asyncpg.connect(settings.db.owner().dsn(name=DB), command_timeout=None)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'; SET synchronous_commit = off")
        for i in range(days):
            d = FIRST_DAY + timedelta(days=i)
            tbl = f"positions_{d:%Y%m%d}"
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", tbl):
                n = await conn.fetchval(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = $1", tbl
                )
                _echo(f"{tbl}: present (~{n:,} rows)")
                continue
            lo = datetime(d.year, d.month, d.day, tzinfo=UTC)
            hi = lo + timedelta(days=1) - timedelta(seconds=interval_s)
            t0 = time.perf_counter()
            stage = f"{tbl}_load"
            await conn.execute(f"DROP TABLE IF EXISTS {stage}")
            await conn.execute(
                f"CREATE UNLOGGED TABLE {stage} (LIKE positions INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS)"
            )
            await conn.execute(_FILL.format(tbl=stage), lo, hi, float(interval_s), vehicles)
            t1 = time.perf_counter()
            await conn.execute(f"ALTER TABLE {stage} ADD PRIMARY KEY (vehicle_id, ts)")
            await conn.execute(f"ALTER TABLE {stage} SET LOGGED")
            await conn.execute(f"ALTER TABLE {stage} RENAME TO {tbl}")
            await conn.execute(f"ALTER INDEX {stage}_pkey RENAME TO {tbl}_pkey")
            await conn.execute(
                f"ALTER TABLE positions ATTACH PARTITION {tbl}"
                f" FOR VALUES FROM ('{lo.isoformat()}')"
                f" TO ('{(lo + timedelta(days=1)).isoformat()}')"
            )
            await conn.execute(f"ANALYZE {tbl}")
            n = await conn.fetchval(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = $1", tbl
            )
            _echo(
                f"{tbl}: {n:,} rows, load {t1 - t0:.0f}s, index+attach "
                f"{time.perf_counter() - t1:.0f}s"
            )
    finally:
        await conn.close()


async def measure(
    samples: int, days: int, vehicles: int, seed: int, utc_day: date | None = None
) -> dict[str, object]:
    settings = get_settings()
    conn = await asyncpg.connect(settings.db.owner().dsn(name=DB))
    try:
        total = await conn.fetchval(
            "SELECT sum(c.reltuples)::bigint FROM pg_inherits i JOIN pg_class c"
            " ON c.oid = i.inhrelid WHERE i.inhparent = 'positions'::regclass"
        )
        size = await conn.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(i.inhrelid))) FROM pg_inherits i"
            " WHERE i.inhparent = 'positions'::regclass"
        )
        rng = random.Random(seed)
        picks = [
            # local days fully inside the generated UTC days: the 2nd day onwards
            (rng.randint(1, vehicles), FIRST_DAY + timedelta(days=rng.randrange(1, days)))
            for _ in range(samples)
        ]
        shift = timedelta(hours=8)
        if utc_day is not None:  # one UTC day = one partition (e.g. to compare a CLUSTERed one)
            picks = [(v, utc_day) for v, _ in picks]
            shift = timedelta(0)
        ref = VehicleRef(0, "桂A00000", 0, "1", None, "none", "in_service", 0.0, 0.0)
        results: dict[str, list[float]] = {
            "cold_sql": [],
            "cold_api": [],
            "warm_sql": [],
            "warm_api": [],
        }
        npoints: list[int] = []
        for phase in ("cold", "warm"):
            for vid, d in picks:
                lo = datetime(d.year, d.month, d.day, tzinfo=UTC) - shift
                hi = lo + timedelta(days=1)  # one local (Asia/Shanghai) day: 2 partitions
                t0 = time.perf_counter()
                track = await fetch_track(conn, vid, lo, hi)
                t1 = time.perf_counter()
                body = orjson.dumps(track_geojson(track, ref))
                t2 = time.perf_counter()
                results[f"{phase}_sql"].append((t1 - t0) * 1000)
                results[f"{phase}_api"].append((t2 - t0) * 1000)
                if phase == "cold":
                    npoints.append(track.total_points)
        vid, d = picks[0]
        lo = datetime(d.year, d.month, d.day, tzinfo=UTC) - shift
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT ts, ST_X(geom), ST_Y(geom), speed_kmh"
            " FROM positions WHERE vehicle_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
            vid,
            lo,
            lo + timedelta(days=1),
        )
        return {
            "rows": int(total or 0),
            "size": size,
            "points": statistics.mean(npoints),
            "body_kb": len(body) / 1024,
            "results": results,
            "plan": "\n".join(r[0] for r in plan),
        }
    finally:
        await conn.close()


LATEST_DB = "fleet_live_latestbench"


async def measure_latest(vehicles: int, repeats: int) -> dict[str, float]:
    """The live map's first paint: GET /positions/latest for a region admin (every vehicle),
    timed through the endpoint's own functions on a seeded throw-away database."""
    import gzip

    from dispatch.seed import SeedConfig, seed
    from fleet.cli import migrate
    from fleet.db import make_engine, make_sessionmaker
    from fleet.identity.principal import Principal
    from fleet.registry.visibility import TRACK_READ, visibility_sql
    from telematics.positions.track import latest_geojson

    settings = get_settings().model_copy(deep=True)
    settings.db.name = LATEST_DB
    await recreate_database(LATEST_DB)
    try:
        await asyncio.to_thread(migrate, settings.db)
        conn = await asyncpg.connect(settings.db.owner().dsn())
        try:
            async with conn.transaction():
                await seed(conn, SeedConfig(vehicles=vehicles, seed=3, terminal_key="bench"))
            await conn.execute(
                "INSERT INTO latest_positions (vehicle_id, ts, terminal_id, geom, speed_kmh,"
                " heading_deg, acc, status, status_since)"
                " SELECT v.id, now() - random() * interval '10 min', 'GX' || lpad(v.id::text, 8,"
                " '0'), ST_SetSRID(ST_MakePoint(ST_X(v.depot) + random() / 50,"
                " ST_Y(v.depot) + random() / 50), 4326), (random() * 80)::real,"
                " (random() * 360)::real, random() > 0.3, 'moving', now() FROM vehicles v"
            )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        engine = make_engine(settings.db, application_name="bench")
        factory = make_sessionmaker(engine)
        admin = Principal(user_id=0, username="bench", org_id=0, bindings={"admin": ("1",)})
        clause, params = visibility_sql(admin, TRACK_READ, org="o", vehicle="v")
        times: list[float] = []
        gz_times: list[float] = []
        body = b""
        packed = b""
        try:
            for _ in range(repeats):
                async with factory() as session:
                    t0 = time.perf_counter()
                    body = await latest_geojson(
                        session, clause, params, bbox=None, status=None, limit=50_000, offset=0
                    )
                    t1 = time.perf_counter()
                    packed = gzip.compress(body, compresslevel=1)
                    t2 = time.perf_counter()
                times.append((t1 - t0) * 1000)
                gz_times.append((t2 - t0) * 1000)
        finally:
            await engine.dispose()
        return {
            "features": float(len(orjson.loads(body)["features"])),
            "p50": percentile(times, 0.5),
            "max": max(times),
            "gz_p50": percentile(gz_times, 0.5),
            "raw_mb": len(body) / 1e6,
            "gz_mb": len(packed) / 1e6,
        }
    finally:
        await drop_database(LATEST_DB)


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=26_638)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--interval-s", type=int, default=120, help="seconds between pings")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=None, help="sample seed (default: random)")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--min-free-gb", type=float, default=15.0)
    ap.add_argument(
        "--utc-day",
        type=date.fromisoformat,
        default=None,
        help="sample UTC days of this date (one partition) instead of local days",
    )
    ap.add_argument(
        "--compare-repack",
        action="store_true",
        help="repack the 2nd day with the project's job (pg_repack by vehicle_id, ts), then"
        " measure single UTC days: the 3rd (arrival order; its pages evicted by the repack's"
        " I/O) against the 2nd (repacked), in the same run",
    )
    ap.add_argument(
        "--drop-os-cache",
        action="store_true",
        help="with --compare-repack: empty the OS page cache (sync; echo 3 >"
        " /proc/sys/vm/drop_caches, needs root) before each day's cold pass, so 'cold' means"
        " read from disk",
    )
    ap.add_argument(
        "--latest-only",
        action="store_true",
        help="only time the live map's first paint (latest positions of 26,638 vehicles)",
    )
    args = ap.parse_args()

    if args.latest_only:
        lat = asyncio.run(measure_latest(args.vehicles, 10))
        _echo(f"machine: {_machine()}")
        _echo(
            f"GET /positions/latest as region admin: {lat['features']:,.0f} features,"
            f" {lat['raw_mb']:.1f} MB GeoJSON, {lat['gz_mb']:.2f} MB gzip-1"
        )
        _echo(f"{'measure':<34}{'p50 ms':>10}{'max ms':>10}")
        _echo(f"{'query + GeoJSON (orjson)':<34}{lat['p50']:>10.0f}{lat['max']:>10.0f}")
        _echo(f"{'query + GeoJSON + gzip':<34}{lat['gz_p50']:>10.0f}")
        return
    free_gb = shutil.disk_usage("/work").free / 1e9
    if not asyncio.run(database_exists(DB)) and free_gb < args.min_free_gb:
        sys.exit(f"only {free_gb:.0f} GB free on /work; need {args.min_free_gb:.0f} GB")
    _echo(subprocess.run(["df", "-h", "/work"], capture_output=True, text=True).stdout.strip())
    try:
        t0 = time.perf_counter()
        asyncio.run(generate(args.vehicles, args.days, args.interval_s))
        _echo(f"generation: {time.perf_counter() - t0:.0f}s")
        if args.generate_only:
            return
        seed = args.seed if args.seed is not None else random.randrange(1_000_000)
        if args.compare_repack:
            compare_repack(args, seed)
            return
        r = asyncio.run(measure(args.samples, args.days, args.vehicles, seed, args.utc_day))
        res = r["results"]
        assert isinstance(res, dict)
        _echo(f"\nmachine: {_machine()}")
        _echo(f"positions: {r['rows']:,} rows, {r['size']} with indexes; sample seed {seed}")
        _echo(
            f"one vehicle-day (local day = 2 UTC partitions): {r['points']:.0f} points,"
            f" GeoJSON {r['body_kb']:.0f} KB"
        )
        _echo(f"{'measure':<34}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        labels = {
            "cold_sql": "cold: fetch_track (SQL)",
            "cold_api": "cold: fetch + GeoJSON + orjson",
            "warm_sql": "warm: fetch_track (SQL)",
            "warm_api": "warm: fetch + GeoJSON + orjson",
        }
        for key, label in labels.items():
            xs = res[key]
            _echo(
                f"{label:<34}{len(xs):>6}{percentile(xs, 0.5):>10.1f}"
                f"{percentile(xs, 0.99):>10.1f}{max(xs):>10.1f}"
            )
        _echo("target: ≤ 50 ms\n\nplan of one query:\n" + str(r["plan"]))
    finally:
        if not args.keep:
            asyncio.run(drop_database(DB))
            _echo(f"dropped {DB}")


def _drop_os_cache() -> None:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        sys.exit(f"--drop-os-cache: cannot write /proc/sys/vm/drop_caches ({exc}); run as root")


def compare_repack(args: argparse.Namespace, seed: int) -> None:
    """Repack day 2 through `telematics.positions.maintenance` (what the nightly worker runs); then
    cold/warm single-partition reads of day 3 (arrival order) and day 2 (repacked)."""
    from telematics.positions.maintenance import repack_due

    if args.days < 3:
        sys.exit("--compare-repack needs --days 3 or more")
    settings = get_settings().model_copy(deep=True)
    settings.db.name = DB
    packed_day, plain_day = FIRST_DAY + timedelta(days=1), FIRST_DAY + timedelta(days=2)
    t0 = time.perf_counter()
    done = asyncio.run(repack_due(settings, days=[packed_day], progress=_echo))
    if done:
        _echo(f"repack of {packed_day}: {time.perf_counter() - t0:.0f}s")
    rows = []
    for label, day in (("arrival order", plain_day), ("repacked", packed_day)):
        if args.drop_os_cache:
            _drop_os_cache()
        r = asyncio.run(measure(args.samples, args.days, args.vehicles, seed, day))
        res = r["results"]
        assert isinstance(res, dict)
        buffers = next((ln for ln in str(r["plan"]).splitlines() if "Buffers" in ln), "")
        rows.append((f"{day} {label}", res, buffers.strip()))
    cache = "OS page cache dropped before each cold pass" if args.drop_os_cache else "OS cache kept"
    _echo(f"\nmachine: {_machine()}; sample seed {seed}; {args.samples} vehicles per day; {cache}")
    _echo(f"{'UTC day':<26}{'cold p50':>10}{'cold p99':>10}{'warm p50':>10}{'warm p99':>10}")
    for label, res, _ in rows:
        _echo(
            f"{label:<26}{percentile(res['cold_sql'], 0.5):>10.1f}"
            f"{percentile(res['cold_sql'], 0.99):>10.1f}{percentile(res['warm_sql'], 0.5):>10.1f}"
            f"{percentile(res['warm_sql'], 0.99):>10.1f}"
        )
    for label, _, buffers in rows:
        _echo(f"{label}: one query's {buffers}")
    _echo("(fetch_track SQL, ms; target ≤ 50 ms)")


if __name__ == "__main__":
    main()
