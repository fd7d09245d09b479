"""The ingest's hot-path SQL (asyncpg): terminal lookups and one transaction per batch.

A batch is COPYed (binary) into a per-connection temporary table, then moved into
`positions` with `INSERT ... ON CONFLICT DO NOTHING` (storage is idempotent on
(vehicle_id, ts), so a redelivered ping is a no-op), `latest_positions` is upserted only
forward in time, and rejections go to `rejected_pings` — all in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from telematics.ingest.pipeline import Batch, InTransactionHook, Item, TerminalInfo
from telematics.positions import flags as F

# Errors after which the same batch is simply retried (connection lost, server restarting,
# our backend terminated, lock conflicts between two ingest processes).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, terminated backend
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization
    # asyncpg's protocol can be left mid-operation when the server drops the connection
    # during COPY; releasing it to the pool then raises this (the pool replaces the
    # connection, so a retry gets a fresh one). Seen in the fault tests under load.
    asyncpg.InternalClientError,
)

_TEMP_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_batch (
    vehicle_id  bigint NOT NULL,
    ts          timestamptz NOT NULL,
    terminal_id text NOT NULL,
    lon         double precision NOT NULL,
    lat         double precision NOT NULL,
    speed_kmh   real,
    heading_deg real,
    alt_m       real,
    odometer_km double precision,
    acc         boolean,
    fix         boolean,
    sats        smallint,
    alarm       bigint,
    seq         bigint,
    flags       integer NOT NULL,
    received_at double precision NOT NULL,  -- epoch seconds (to_timestamp in SQL)
    n           integer NOT NULL            -- index of the item in the batch
) ON COMMIT DELETE ROWS
"""
_COLUMNS = (
    "vehicle_id",
    "ts",
    "terminal_id",
    "lon",
    "lat",
    "speed_kmh",
    "heading_deg",
    "alt_m",
    "odometer_km",
    "acc",
    "fix",
    "sats",
    "alarm",
    "seq",
    "flags",
    "received_at",
    "n",
)

# Returns the batch index of each row this statement inserted (of a key that appears twice
# in the batch, the first copy: the second is a conflict with it).
_INSERT_POSITIONS = """
WITH ins AS (
    INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg, alt_m,
                           odometer_km, acc, fix, sats, alarm, seq, flags, received_at)
    SELECT vehicle_id, ts, terminal_id, ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed_kmh,
           heading_deg, alt_m, odometer_km, acc, fix, sats, alarm, seq, flags,
           to_timestamp(received_at)
    FROM ingest_batch
    ON CONFLICT DO NOTHING
    RETURNING vehicle_id, ts
)
SELECT min(b.n) FROM ins JOIN ingest_batch b USING (vehicle_id, ts) GROUP BY b.vehicle_id, b.ts
"""

# The live position only moves forward in time; (0,0) is never a live position. Rows are
# taken in vehicle_id order so that two ingest processes lock them in the same order.
_UPSERT_LATEST = """
INSERT INTO latest_positions AS lp (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg,
                                    odometer_km, acc, fix, alarm, flags, received_at)
SELECT DISTINCT ON (vehicle_id) vehicle_id, ts, terminal_id,
       ST_SetSRID(ST_MakePoint(lon, lat), 4326), speed_kmh, heading_deg, odometer_km, acc, fix,
       alarm, flags, to_timestamp(received_at)
FROM ingest_batch
WHERE flags & $1 = 0
ORDER BY vehicle_id, ts DESC
ON CONFLICT (vehicle_id) DO UPDATE SET
    ts = excluded.ts, terminal_id = excluded.terminal_id, geom = excluded.geom,
    speed_kmh = excluded.speed_kmh, heading_deg = excluded.heading_deg,
    odometer_km = excluded.odometer_km, acc = excluded.acc, fix = excluded.fix,
    alarm = excluded.alarm, flags = excluded.flags, received_at = excluded.received_at
WHERE excluded.ts > lp.ts
"""

_REJECT_COLUMNS = ("received_at", "terminal_id", "topic", "reason", "detail", "payload")

_LOOKUP = """
SELECT t.id, t.active, t.vehicle_id, o.path::text AS org_path,
       extract(epoch FROM lp.ts)::float8 AS last_ts, ST_Y(lp.geom) AS last_lat,
       ST_X(lp.geom) AS last_lon
FROM terminals t
LEFT JOIN vehicles v ON v.id = t.vehicle_id
LEFT JOIN orgs o ON o.id = v.unit_id
LEFT JOIN latest_positions lp ON lp.vehicle_id = t.vehicle_id
WHERE $1::text[] IS NULL OR t.id = ANY($1::text[])
"""


async def init_connection(conn: asyncpg.Connection) -> None:
    """Pool `init`: the per-session temporary table the batches are COPYed into."""
    await conn.execute(_TEMP_TABLE)


async def create_pool(dsn: str, *, application_name: str = "ingest") -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=2,
        init=init_connection,
        server_settings={"application_name": application_name},
    )
    assert pool is not None
    return pool


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _records(items: Sequence[Item]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    append = out.append
    for n, item in enumerate(items):
        p = item.ping
        assert p is not None
        append(
            (
                item.vehicle_id, p.ts, item.terminal_id, p.lon, p.lat, p.speed_kmh,
                p.heading_deg, p.alt_m, p.odometer_km, p.acc, p.fix, p.sats, p.alarm, p.seq,
                item.flags, item.received_at, n,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class BacklogPolicy:
    """Which new rows the derive worker must be told about (see migration 0008)."""

    late_commit_s: float = 5.0  # stored this long after receipt: behind the derive cursor
    old_ping_s: float = 24 * 3600.0  # this old at receipt: below the derive worker's floor


def _backlog(items: Sequence[Item], policy: BacklogPolicy) -> dict[int, tuple[datetime, str]]:
    """Earliest `ts` per vehicle among the new rows the derive cursor would miss."""
    now = time.time()
    out: dict[int, tuple[datetime, str]] = {}
    for item in items:
        if not item.new:
            continue
        if now - item.received_at > policy.late_commit_s:
            reason = "late_commit"
        elif item.received_at - item.epoch > policy.old_ping_s:
            reason = "old_ping"
        else:
            continue
        seen = out.get(item.vehicle_id)
        if seen is None or item.ts < seen[0]:
            out[item.vehicle_id] = (item.ts, reason)
    return out


async def write_batch(
    pool: asyncpg.Pool,
    batch: Batch,
    hooks: Sequence[InTransactionHook] = (),
    backlog: BacklogPolicy | None = BacklogPolicy(),
) -> int:
    """Store one batch in one transaction; returns the number of new position rows.

    Sets `item.new` on the items whose row this delivery inserted. New rows that the derive
    worker's cursor would miss (`backlog`) are queued for it in `derive_backlog`, last, so
    that the check is made as close to the commit as possible.
    """
    items = batch.items
    async with pool.acquire() as conn, conn.transaction():
        inserted: list[asyncpg.Record] = []
        if items:
            await conn.copy_records_to_table(
                "ingest_batch", records=_records(items), columns=_COLUMNS
            )
            inserted = await conn.fetch(_INSERT_POSITIONS)
            await conn.execute(_UPSERT_LATEST, F.NULL_ISLAND)
        if batch.rejected:
            await conn.copy_records_to_table(
                "rejected_pings",
                records=[
                    (_dt(r.received_at), r.terminal_id, r.topic, r.reason, r.detail, r.payload)
                    for r in batch.rejected
                ],
                columns=_REJECT_COLUMNS,
            )
        for item in items:
            item.new = False
        for r in inserted:
            items[r[0]].new = True
        for hook in hooks:
            await hook(conn, items)
        late = _backlog(items, backlog) if backlog is not None and inserted else {}
        if late:
            await conn.execute(
                "INSERT INTO derive_backlog (vehicle_id, from_ts, reason)"
                " SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[])",
                list(late),
                [v[0] for v in late.values()],
                [v[1] for v in late.values()],
            )
            batch.stats["derive_backlog"] += len(late)
    new = len(inserted)
    batch.stats["stored"] += new
    batch.stats["duplicates"] += len(items) - new
    return new


async def write_items_one_by_one(
    pool: asyncpg.Pool, batch: Batch, backlog: BacklogPolicy | None = BacklogPolicy()
) -> None:
    """Fallback after a non-transient error: isolate the ping(s) the database refuses."""
    good: list[Item] = []
    for item in batch.items:
        single = Batch(deliveries=[], items=[item])
        try:
            await write_batch(pool, single, backlog=backlog)
        except TRANSIENT_DB_ERRORS:
            raise
        except asyncpg.PostgresError as exc:
            batch.reject(item, "store_failed", f"{type(exc).__name__}: {exc}"[:300])
            continue
        good.append(item)
    rejected_only = Batch(deliveries=[], rejected=batch.rejected)
    await write_batch(pool, rejected_only)
    batch.items = good
    batch.stats["stored"] += sum(1 for i in good if i.new)


class TerminalDirectory:
    """terminal id -> (vehicle, unit path, active), cached; unknown ids re-read from the DB.

    Entries expire after `ttl_s` (a deactivated terminal stops being accepted); ids the
    database does not know are remembered for `negative_ttl_s` so a flood of pings from an
    unprovisioned terminal costs one query per interval, not one per batch.
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl_s: float = 300, negative_ttl_s: float = 10):
        self._pool = pool
        self._ttl = ttl_s
        self._neg_ttl = negative_ttl_s
        self._known: dict[str, tuple[float, TerminalInfo]] = {}
        self._unknown: dict[str, float] = {}

    async def load_all(self) -> int:
        now = time.monotonic()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_LOOKUP, None)
        for r in rows:
            self._known[r["id"]] = (now, _info(r))
        return len(rows)

    def forget(self, terminal_id: str) -> None:
        """Drop a cached entry (the terminal changed: re-read it on its next ping)."""
        self._known.pop(terminal_id, None)
        self._unknown.pop(terminal_id, None)

    async def resolve(self, terminal_ids: set[str]) -> dict[str, TerminalInfo]:
        now = time.monotonic()
        out: dict[str, TerminalInfo] = {}
        missing: list[str] = []
        for tid in terminal_ids:
            hit = self._known.get(tid)
            if hit is not None and now - hit[0] < self._ttl:
                out[tid] = hit[1]
            elif tid in self._unknown and now - self._unknown[tid] < self._neg_ttl:
                continue
            else:
                missing.append(tid)
        if missing:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(_LOOKUP, missing)
            found = set()
            for r in rows:
                info = _info(r)
                self._known[info.terminal_id] = (now, info)
                out[info.terminal_id] = info
                found.add(info.terminal_id)
            for tid in missing:
                if tid not in found:
                    self._known.pop(tid, None)
                    self._unknown[tid] = now
        return out


def _info(r: asyncpg.Record) -> TerminalInfo:
    return TerminalInfo(
        terminal_id=r["id"],
        active=r["active"],
        vehicle_id=r["vehicle_id"],
        org_path=r["org_path"],
        last_ts=r["last_ts"],
        last_lat=r["last_lat"],
        last_lon=r["last_lon"],
    )


async def ensure_partitions(pool: asyncpg.Pool, days_back: int = 1, days_ahead: int = 7) -> int:
    """Daily position partitions around today (idempotent; the ingest runs it daily)."""
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT fleet_ensure_position_partitions("
                "(now() AT TIME ZONE 'UTC')::date - $1::int, $1::int + $2::int + 1)",
                days_back,
                days_ahead,
            )
        )
