"""What a derive cycle reads: its shard's lock and cursor, the backlog, the new points.

Positions are read by their ``received_at`` watermark (BRIN-indexed), ``ts`` floored so only
recent partitions are touched, each point with its geofence context computed in SQL (the
strictest speed-limit fence containing it, whether it is inside an allowed area).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson

_POINT_COLUMNS = """
    p.vehicle_id, p.ts, ST_Y(p.geom) AS lat, ST_X(p.geom) AS lon, p.speed_kmh, p.acc,
    p.odometer_km, p.flags, v.body_type, sl.limit_kmh, aa.inside, aa.ids
"""
# A geofence applies to a ping only from its creation on: a fence drawn today says nothing
# about where a car was allowed yesterday (re-derived or buffered pings included).
_POINT_JOINS = """
JOIN vehicles v ON v.id = p.vehicle_id
JOIN orgs o ON o.id = v.unit_id
LEFT JOIN LATERAL (
    SELECT min(g.speed_limit_kmh)::float8 AS limit_kmh
    FROM geofences g JOIN orgs go ON go.id = g.org_id
    WHERE g.purpose = 'speed_limit' AND g.active AND go.path @> o.path
      AND g.created_at <= p.ts AND ST_Covers(g.geom, p.geom)
) sl ON true
LEFT JOIN LATERAL (
    SELECT bool_or(ST_Covers(g.geom, p.geom)) AS inside, array_agg(g.id) AS ids
    FROM geofences g JOIN orgs go ON go.id = g.org_id
    WHERE g.purpose = 'allowed_area' AND g.active AND go.path @> o.path
      AND g.created_at <= p.ts
) aa ON true
"""
_NEW_POINTS_SQL = f"""
SELECT {_POINT_COLUMNS}
FROM positions p {_POINT_JOINS}
WHERE p.received_at > $1 AND p.received_at <= $2 AND p.ts >= $3 AND p.ts <= $4
  AND p.vehicle_id % $5 = $6
ORDER BY p.vehicle_id, p.ts
"""
_VEHICLE_POINTS_SQL = f"""
SELECT {_POINT_COLUMNS}
FROM positions p {_POINT_JOINS}
WHERE p.vehicle_id = $1 AND p.ts >= $2 AND p.ts <= $3
ORDER BY p.ts
"""


# Taken per shard; a vehicle queued several times is re-derived once from its earliest ts.
# Entries for points in the future of this cycle's `now` (tests run cycles at set times)
# stay queued.
_TAKE_BACKLOG_SQL = """
WITH taken AS (
    DELETE FROM derive_backlog
    WHERE vehicle_id % $1 = $2 AND from_ts <= $3
    RETURNING vehicle_id, from_ts
)
SELECT vehicle_id, min(from_ts) AS from_ts FROM taken GROUP BY vehicle_id
"""


async def lock_shard(conn: asyncpg.Connection, shard: tuple[int, int]) -> bool:
    """A single runner per shard: a transaction-scoped advisory lock, False when taken."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtext('fleet.derive'), $1)", shard[0]
        )
    )


async def read_cursor(conn: asyncpg.Connection, name: str) -> datetime | None:
    """The shard's ``received_at`` watermark, locked for this transaction."""
    position: datetime | None = await conn.fetchval(
        "SELECT position FROM derive_cursors WHERE name = $1 FOR UPDATE", name
    )
    return position


async def save_cursor(conn: asyncpg.Connection, name: str, position: datetime) -> None:
    await conn.execute(
        "INSERT INTO derive_cursors (name, position) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position,"
        " updated_at = now()",
        name,
        position,
    )


async def take_backlog(
    conn: asyncpg.Connection, shard: tuple[int, int], now: datetime
) -> dict[int, datetime]:
    """Rows the cursor cannot see (committed late, or older than the floor), queued by the
    ingest: vehicle -> earliest queued ts. Taken in the cycle's transaction, so a failed
    cycle leaves them queued."""
    i, n = shard
    return {r["vehicle_id"]: r["from_ts"] for r in await conn.fetch(_TAKE_BACKLOG_SQL, n, i, now)}


async def new_points(
    conn: asyncpg.Connection,
    shard: tuple[int, int],
    received: tuple[datetime, datetime],
    ts: tuple[datetime, datetime],
) -> list[asyncpg.Record]:
    """The shard's points received in (received[0], received[1]] with ts in [ts[0], ts[1]],
    by vehicle then ts."""
    i, n = shard
    rows: list[asyncpg.Record] = await conn.fetch(
        _NEW_POINTS_SQL, received[0], received[1], ts[0], ts[1], n, i
    )
    return rows


async def vehicle_points(
    conn: asyncpg.Connection, vid: int, since: datetime, until: datetime
) -> list[asyncpg.Record]:
    """One vehicle's stored points in [since, until], in ts order (re-processing)."""
    rows: list[asyncpg.Record] = await conn.fetch(_VEHICLE_POINTS_SQL, vid, since, until)
    return rows


async def load_states(
    conn: asyncpg.Connection, ids: list[int]
) -> dict[int, tuple[datetime, dict[str, Any]]]:
    """Stored per-vehicle state: vehicle -> (last ts fed, state document)."""
    return {
        r["vehicle_id"]: (r["last_ts"], orjson.loads(r["state"]))
        for r in await conn.fetch(
            "SELECT vehicle_id, last_ts, state::text AS state FROM derive_state"
            " WHERE vehicle_id = ANY($1::bigint[])",
            ids,
        )
    }
