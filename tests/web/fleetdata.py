"""Position data for the browser tests and the console benchmark.

Rows go where the ingest pipeline puts them (positions, latest_positions) and live batches go
through the real fan-out path (telematics.bus.publish_positions on Redis), so the pages read
exactly what they would read in production.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg


@dataclass
class Car:
    id: int
    plate: str
    org_path: str
    lon: float
    lat: float
    heading: float
    speed: float


async def load_cars(conn: asyncpg.Connection, limit: int | None = None) -> list[Car]:
    rows = await conn.fetch(
        "SELECT v.id, v.plate, o.path::text AS org_path, ST_X(v.depot) AS lon, ST_Y(v.depot) AS lat"
        " FROM vehicles v JOIN orgs o ON o.id = v.unit_id ORDER BY v.id"
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    rng = random.Random(11)
    return [
        Car(r["id"], r["plate"], r["org_path"], r["lon"], r["lat"], rng.uniform(0, 360), 0.0)
        for r in rows
    ]


def step(cars: list[Car], dt_s: float, rng: random.Random, moving_share: float = 0.6) -> None:
    """Move the first `moving_share` of the fleet along its heading at 20–70 km/h."""
    n_moving = int(len(cars) * moving_share)
    for i, c in enumerate(cars):
        if i >= n_moving:
            c.speed = 0.0
            continue
        c.speed = 20 + (c.id % 50)
        c.heading = (c.heading + rng.uniform(-12, 12)) % 360
        d_m = c.speed / 3.6 * dt_s
        c.lat += d_m * math.cos(math.radians(c.heading)) / 111_320
        c.lon += d_m * math.sin(math.radians(c.heading)) / (111_320 * math.cos(math.radians(c.lat)))


def batch_items(cars: list[Car], ts: datetime) -> list[dict[str, Any]]:
    """One live batch in the telematics.bus contract."""
    iso = ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return [
        {
            "vehicle_id": c.id,
            "org_path": c.org_path,
            "ts": iso,
            "lat": round(c.lat, 6),
            "lon": round(c.lon, 6),
            "speed_kmh": c.speed,
            "heading_deg": round(c.heading, 1),
            "acc": c.speed > 0,
            "flags": 0,
        }
        for c in cars
    ]


async def write_latest(conn: asyncpg.Connection, cars: list[Car], ts: datetime) -> None:
    """latest_positions as the ingest leaves them (status from speed)."""
    await conn.executemany(
        "INSERT INTO latest_positions (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg,"
        " acc, fix, alarm, flags, status, status_since, received_at)"
        " VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326), $6, $7, $8, true, 0, 0,"
        " $9, $2, $2)"
        " ON CONFLICT (vehicle_id) DO UPDATE SET ts = EXCLUDED.ts, geom = EXCLUDED.geom,"
        " speed_kmh = EXCLUDED.speed_kmh, heading_deg = EXCLUDED.heading_deg,"
        " status = EXCLUDED.status",
        [
            (
                c.id,
                ts,
                f"GX{c.id:08d}",
                c.lon,
                c.lat,
                c.speed,
                c.heading,
                c.speed > 0,
                "moving" if c.speed > 0 else "parked",
            )
            for c in cars
        ],
    )


async def write_track(
    conn: asyncpg.Connection,
    vehicle_id: int,
    start: datetime,
    end: tuple[float, float],
    origin: tuple[float, float],
    *,
    minutes: int = 40,
    every_s: int = 10,
) -> int:
    """A drive from origin to end (lon, lat) as 10-second pings with a speed profile."""
    n = minutes * 60 // every_s
    rows = []
    for i in range(n + 1):
        f = i / n
        lon = origin[0] + (end[0] - origin[0]) * f + 0.004 * math.sin(f * math.pi * 3)
        lat = origin[1] + (end[1] - origin[1]) * f
        speed = 0.0 if i in (0, n) else 35 + 30 * math.sin(f * math.pi) + 8 * math.sin(i / 4)
        rows.append(
            (
                vehicle_id,
                start + timedelta(seconds=i * every_s),
                f"GX{vehicle_id:08d}",
                lon,
                lat,
                speed,
                90.0,
                1000 + f * 25,
                speed > 0,
            )
        )
    await conn.executemany(
        "INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg,"
        " odometer_km, acc, fix, flags) VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326),"
        " $6, $7, $8, $9, true, 0) ON CONFLICT DO NOTHING",
        rows,
    )
    return len(rows)
