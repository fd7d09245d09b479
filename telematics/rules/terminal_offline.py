"""Terminal offline while in service (终端离线): a fleet-wide check, one SQL statement.

During working hours, a vehicle in service whose terminal has not reported for
``offline_in_service_min`` minutes gets a ``terminal_offline`` alert (dedup key: vehicle and
last ping, so one per silence); the alert ends at the terminal's first ping back.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from telematics.rules.thresholds import DeriveSettings
from telematics.rules.working_time import in_working_hours


async def check(
    conn: asyncpg.Connection, now: datetime, cfg: DeriveSettings, shard: tuple[int, int]
) -> list[asyncpg.Record]:
    """Close the alerts of terminals heard again; raise new ones. Rows to announce."""
    i, n = shard
    # a terminal that reports again closes its offline alert at its first ping back
    await conn.execute(
        """
        UPDATE alerts a SET ended_at = (
            SELECT min(p.ts) FROM positions p
            WHERE p.vehicle_id = a.vehicle_id AND p.ts > a.started_at AND p.ts <= $1)
        FROM latest_positions lp
        WHERE a.kind = 'terminal_offline' AND a.ended_at IS NULL
          AND lp.vehicle_id = a.vehicle_id AND lp.ts > a.started_at
        """,
        now,
    )
    if not in_working_hours(now, cfg):
        return []
    minutes = cfg.offline_in_service_min
    rows = await conn.fetch(
        """
        INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location,
            message, evidence, dedup_key)
        SELECT 'terminal_offline', 'warning', v.id, v.unit_id, lp.ts, lp.geom,
               format('终端离线 terminal offline while in service: no ping since %s'
                      ' (> %s min, during working hours)',
                      to_char(lp.ts AT TIME ZONE $4, 'YYYY-MM-DD HH24:MI'), $2::float8),
               jsonb_build_object(
                   'type', 'FeatureCollection', 'rule', 'terminal_offline',
                   'vehicle_id', v.id,
                   'thresholds', jsonb_build_object('offline_min', $2::float8,
                       'vehicle_status', v.status, 'checked_at', $1::timestamptz),
                   'features', jsonb_build_array(jsonb_build_object(
                       'type', 'Feature', 'geometry', ST_AsGeoJSON(lp.geom, 6)::jsonb,
                       'properties', jsonb_build_object('ts', lp.ts, 'terminal_id',
                           lp.terminal_id, 'last_known', true)))),
               'terminal_offline:' || v.id || ':' || floor(extract(epoch FROM lp.ts))::bigint
        FROM latest_positions lp JOIN vehicles v ON v.id = lp.vehicle_id
        WHERE v.status = 'in_service' AND lp.ts < $1 - make_interval(secs => $2 * 60)
          AND v.id % $3 = $5
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
            ST_Y(a.location) AS lat, ST_X(a.location) AS lon,
            (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
        """,
        now,
        minutes,
        n,
        cfg.timezone,
        i,
    )
    return list(rows)
