"""Vehicle status on the live map (moving / parked / offline) in ``latest_positions``.

Moving or parked follows the segmenter's open segment (a trip or a stop); a vehicle whose
last ping is older than ``offline_after_s`` is offline. Each change becomes a ``status``
event of the cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from telematics.derive.report import CycleReport, status_events


async def moving_parked(
    conn: asyncpg.Connection,
    states: list[dict[str, Any]],
    now: datetime,
    offline_after_s: float,
    rep: CycleReport,
) -> None:
    """Set moving / parked from the vehicles' new states (not for a vehicle already offline)."""
    wanted = [
        {
            "vehicle_id": s["vehicle_id"],
            "status": "moving" if s["mode"] == "trip" else "parked",
            "since": s["since"],
        }
        for s in states
        if s["mode"] is not None
    ]
    if not wanted:
        return
    rows = await conn.fetch(
        """
        WITH w AS (
            SELECT * FROM jsonb_to_recordset($1::jsonb)
                AS w(vehicle_id bigint, status text, since timestamptz)
        ), old AS (
            SELECT lp.vehicle_id, lp.status AS previous FROM latest_positions lp
            JOIN w ON w.vehicle_id = lp.vehicle_id
            WHERE lp.status <> w.status AND lp.ts >= $2
            FOR UPDATE OF lp
        )
        UPDATE latest_positions lp SET status = w.status, status_since = w.since
        FROM w, old, vehicles v, orgs o
        WHERE lp.vehicle_id = w.vehicle_id AND old.vehicle_id = lp.vehicle_id
          AND v.id = lp.vehicle_id AND o.id = v.unit_id
        RETURNING lp.vehicle_id, lp.status, old.previous, lp.status_since, lp.ts,
            ST_Y(lp.geom) AS lat, ST_X(lp.geom) AS lon, o.path::text AS org_path
        """,
        orjson.dumps(wanted).decode(),
        now - timedelta(seconds=offline_after_s),
    )
    status_events(rows, rep)


async def offline(
    conn: asyncpg.Connection,
    now: datetime,
    offline_after_s: float,
    shard: tuple[int, int],
    rep: CycleReport,
) -> None:
    """Vehicles of the shard not heard for ``offline_after_s`` become offline."""
    i, n = shard
    rows = await conn.fetch(
        """
        WITH old AS (
            SELECT vehicle_id, status AS previous FROM latest_positions
            WHERE status <> 'offline' AND ts < $1 AND vehicle_id % $2 = $3
            FOR UPDATE
        )
        UPDATE latest_positions lp SET status = 'offline', status_since = lp.ts
        FROM old, vehicles v, orgs o
        WHERE old.vehicle_id = lp.vehicle_id AND v.id = lp.vehicle_id AND o.id = v.unit_id
        RETURNING lp.vehicle_id, lp.status, old.previous, lp.status_since, lp.ts,
            ST_Y(lp.geom) AS lat, ST_X(lp.geom) AS lon, o.path::text AS org_path
        """,
        now - timedelta(seconds=offline_after_s),
        n,
        i,
    )
    status_events(rows, rep)
