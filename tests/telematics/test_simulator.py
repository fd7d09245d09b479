"""The simulator: plausible road-like movement, own credentials, gaps and bad data."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import asyncpg

from fleet.config import Settings
from telematics.ingest.pipeline import distance_m
from telematics.simulator import Place, SimConfig, Vehicle, road_path, run_simulation

from .conftest import IngestProcs, wait_rows


def test_road_path_bends_and_ends_where_asked() -> None:
    rng = random.Random(3)
    a, b = (108.30, 22.80), (108.60, 22.95)
    path = road_path(rng, a, b)
    assert path[0] == a and path[-1] == b
    assert len(path) > 10  # a bend every ~1.5 km over ~35 km
    straight = distance_m(a[1], a[0], b[1], b[0])
    along = sum(distance_m(p[1], p[0], q[1], q[0]) for p, q in itertools.pairwise(path))
    assert straight < along < 1.6 * straight  # longer than a straight line, still plausible


def test_vehicle_drives_parks_and_counts_odometer() -> None:
    home = Place(108.366, 22.817, "1.2.3.4")
    places = [Place(108.40, 22.83, "1.2.3.5"), Place(108.50, 22.90, "1.2")]
    v = Vehicle("GX00000001", home, places, random.Random(5), epoch_ms=False)
    v._depart()
    odo0 = v.odometer_km
    t = 1_000_000.0
    speeds = []
    for _ in range(600):
        t += 10
        v.step(t, 10)
        speeds.append(v.speed_kmh)
        p = v.ping(t)
        assert -90 <= p["lat"] <= 90 and 0 <= p["heading_deg"] <= 360
    assert max(speeds) <= 110 and max(speeds) > 25
    assert v.odometer_km > odo0
    assert 0 in speeds  # parked (ignition off) or at lights at some point


async def test_simulated_fleet_reaches_the_database(
    mq_settings: Settings, ingest_procs: IngestProcs
) -> None:
    ingest_procs.start()
    s = mq_settings.model_copy(deep=True)
    s.seed.terminal_key = type(s.seed.terminal_key)("test-terminal-key")
    cfg = SimConfig(vehicles=20, interval_s=1.0, gap_share=0.0, bad_share=0.2, duration_s=6, seed=9)
    started = datetime.now(UTC)
    counters = await run_simulation(s, cfg)
    assert counters.errors == 0, counters
    assert counters.acked >= 60
    dsn = mq_settings.db.dsn()
    conn = await asyncpg.connect(dsn)
    try:
        tids = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM terminals ORDER BY md5(id || '9') LIMIT 20")
        ]
    finally:
        await conn.close()
    good = counters.acked - counters.bad
    stored = await wait_rows(
        dsn,
        "SELECT count(*) FROM positions WHERE terminal_id = ANY($1::text[]) AND received_at >= $2",
        (tids, started),
        good,
    )
    rejected = await wait_rows(
        dsn,
        "SELECT count(*) FROM rejected_pings WHERE terminal_id = ANY($1::text[])"
        " AND received_at >= $2",
        (tids, started),
        counters.bad,
    )
    assert stored == good and rejected == counters.bad > 0
