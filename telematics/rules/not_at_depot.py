"""Not back at the depot overnight (夜间未入库): a fleet-wide check, once a day per shard.

At ``depot_check_at`` (local time), every vehicle in service whose last position lies more
than ``depot_radius_m`` from its depot gets a ``not_at_depot`` alert (dedup key: vehicle and
local day). A ``derive_cursors`` row per shard records that the day's check has run.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from telematics.rules.thresholds import DeriveSettings


async def check(
    conn: asyncpg.Connection, now: datetime, cfg: DeriveSettings, shard: tuple[int, int]
) -> list[asyncpg.Record]:
    """The day's depot check, once, after its local time. Rows to announce."""
    tz = ZoneInfo(cfg.timezone)
    local = now.astimezone(tz)
    if local.time() < cfg.depot_check_at:
        return []
    i, n = shard
    name = "depot_check" if n == 1 else f"depot_check:{i}/{n}"
    day_start = datetime.combine(local.date(), cfg.depot_check_at, tz)
    done = await conn.fetchval("SELECT position FROM derive_cursors WHERE name = $1", name)
    if done is not None and done >= day_start:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location,
            message, evidence, dedup_key)
        SELECT 'not_at_depot', 'warning', v.id, v.unit_id, $1, lp.geom,
               format('夜间未入库 not back at the depot at %s: %s m away (radius %s m)',
                      $5::text, round(ST_Distance(lp.geom::geography, v.depot::geography)),
                      $2::float8),
               jsonb_build_object(
                   'type', 'FeatureCollection', 'rule', 'not_at_depot', 'vehicle_id', v.id,
                   'thresholds', jsonb_build_object('radius_m', $2::float8,
                       'checked_at', $1::timestamptz, 'local_check_time', $5::text),
                   'distance_m', round(ST_Distance(lp.geom::geography, v.depot::geography)),
                   'features', jsonb_build_array(
                       jsonb_build_object('type', 'Feature',
                           'geometry', ST_AsGeoJSON(v.depot, 6)::jsonb,
                           'properties', jsonb_build_object('role', 'depot',
                               'radius_m', $2::float8)),
                       jsonb_build_object('type', 'Feature',
                           'geometry', ST_AsGeoJSON(lp.geom, 6)::jsonb,
                           'properties', jsonb_build_object('role', 'last_position',
                               'ts', lp.ts, 'status', lp.status)))),
               'not_at_depot:' || v.id || ':' || $3::text
        FROM vehicles v JOIN latest_positions lp ON lp.vehicle_id = v.id
        WHERE v.status = 'in_service' AND v.id % $4 = $6
          AND NOT ST_DWithin(lp.geom::geography, v.depot::geography, $2)
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
            ST_Y(a.location) AS lat, ST_X(a.location) AS lon,
            (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
        """,
        now,
        cfg.depot_radius_m,
        local.date().isoformat(),
        n,
        f"{cfg.depot_check_at:%H:%M}",
        i,
    )
    await conn.execute(
        "INSERT INTO derive_cursors (name, position) VALUES ($1, $2) ON CONFLICT (name)"
        " DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        name,
        now,
    )
    return list(rows)
