"""Daily mileage (vehicle_daily_mileage): added up as points arrive, recomputed exactly on
re-processing. The odometer's span when it moved, else the length of the track.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from fleet.distance import great_circle_m
from telematics.positions.flags import UNRELIABLE


@dataclass
class MileageDelta:
    """What a cycle adds to one vehicle-day."""

    track_m: float = 0.0
    odo_min: float | None = None
    odo_max: float | None = None
    points: int = 0


Deltas = dict[tuple[int, date], MileageDelta]


def add_points(
    deltas: Deltas,
    vid: int,
    rows: list[asyncpg.Record],
    prev: tuple[float, float] | None,
    tz: ZoneInfo,
) -> None:
    """Add a vehicle's usable points (ts order) to its days; ``prev`` is the last point the
    vehicle's state had already counted (the track continues from it)."""
    for r in rows:
        day = r["ts"].astimezone(tz).date()
        m = deltas.setdefault((vid, day), MileageDelta())
        if prev is not None:
            m.track_m += great_circle_m(prev[0], prev[1], r["lat"], r["lon"])
        prev = (r["lat"], r["lon"])
        m.points += 1
        odo = r["odometer_km"]
        if odo is not None:
            m.odo_min = odo if m.odo_min is None else min(m.odo_min, odo)
            m.odo_max = odo if m.odo_max is None else max(m.odo_max, odo)


async def write_deltas(conn: asyncpg.Connection, mileage: Deltas) -> None:
    """Merge a cycle's deltas into the stored days."""
    if not mileage:
        return
    rows = [
        {
            "vehicle_id": vid,
            "day": day.isoformat(),
            "track_km": m.track_m / 1000.0,
            "odo_min": m.odo_min,
            "odo_max": m.odo_max,
            "points": m.points,
        }
        for (vid, day), m in mileage.items()
    ]
    await conn.execute(
        """
        WITH d AS (
            SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(vehicle_id bigint, day date,
                track_km float8, odo_min float8, odo_max float8, points int)
        ), merged AS (
            SELECT d.vehicle_id, d.day,
                   coalesce(t.track_km, 0) + d.track_km AS track_km,
                   least(t.odometer_first_km, d.odo_min) AS odo_first,
                   greatest(t.odometer_last_km, d.odo_max) AS odo_last,
                   coalesce(t.points, 0) + d.points AS points
            FROM d LEFT JOIN vehicle_daily_mileage t
                ON t.vehicle_id = d.vehicle_id AND t.day = d.day
        )
        INSERT INTO vehicle_daily_mileage AS t (vehicle_id, day, distance_km, source,
            track_km, odometer_first_km, odometer_last_km, points, updated_at)
        SELECT vehicle_id, day,
               CASE WHEN odo_last > odo_first THEN odo_last - odo_first ELSE track_km END,
               CASE WHEN odo_last > odo_first THEN 'odometer' ELSE 'track' END,
               track_km, odo_first, odo_last, points, now()
        FROM merged
        ON CONFLICT (vehicle_id, day) DO UPDATE SET distance_km = EXCLUDED.distance_km,
            source = EXCLUDED.source, track_km = EXCLUDED.track_km,
            odometer_first_km = EXCLUDED.odometer_first_km,
            odometer_last_km = EXCLUDED.odometer_last_km, points = EXCLUDED.points,
            updated_at = now()
        """,
        orjson.dumps(rows).decode(),
    )


async def recompute(
    conn: asyncpg.Connection, vid: int, first: date, last: date, timezone: str
) -> None:
    """Exact daily mileage from stored positions: odometer span, else ST_Length."""
    await conn.execute(
        """
        WITH days AS (
            SELECT d::date AS day FROM generate_series($2::date, $3::date, '1 day') d
        ), m AS (
            SELECT days.day, count(p.ts) AS n,
                   coalesce(ST_Length(ST_MakeLine(p.geom ORDER BY p.ts)::geography), 0)
                       / 1000.0 AS track_km,
                   min(p.odometer_km) AS odo_min, max(p.odometer_km) AS odo_max
            FROM days
            LEFT JOIN positions p ON p.vehicle_id = $1
                AND p.ts >= (days.day::timestamp AT TIME ZONE $4)
                AND p.ts < ((days.day + 1)::timestamp AT TIME ZONE $4)
                AND (p.flags & $5) = 0
            GROUP BY days.day
        )
        INSERT INTO vehicle_daily_mileage AS t (vehicle_id, day, distance_km, source,
            track_km, odometer_first_km, odometer_last_km, points, updated_at)
        SELECT $1, day,
               CASE WHEN odo_max > odo_min THEN odo_max - odo_min ELSE track_km END,
               CASE WHEN odo_max > odo_min THEN 'odometer' ELSE 'track' END,
               track_km, odo_min, odo_max, n, now()
        FROM m WHERE n > 0
        ON CONFLICT (vehicle_id, day) DO UPDATE SET distance_km = EXCLUDED.distance_km,
            source = EXCLUDED.source, track_km = EXCLUDED.track_km,
            odometer_first_km = EXCLUDED.odometer_first_km,
            odometer_last_km = EXCLUDED.odometer_last_km, points = EXCLUDED.points,
            updated_at = now()
        """,
        vid,
        first,
        last,
        timezone,
        int(UNRELIABLE),
    )
