"""Rows the derive cursor cannot see are queued by the ingest and derived all the same.

The derive worker reads positions by a `received_at` watermark trailing the clock by
`settle_s`, floored at `lookback_h` of `ts`. Two kinds of rows fall outside that view: a
batch committed long after it was received (here: the ingest blocked on a row lock, as in
a database stall), and buffered pings days old. Real broker, real `fleet ingest`, real
PostgreSQL; the derive cycles run on a one-vehicle shard of the same database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from fleet.config import Settings
from telematics.derive.cycle import Deriver
from telematics.rules.thresholds import DeriveSettings

from .conftest import IngestProcs, wait_rows
from .test_ingest import ping


def a_drive(t0: datetime) -> list[dict[str, Any]]:
    """Parked 2 min, ~1.5 km (20 × 76 m), parked 5 min with the engine off: one trip."""
    pts = []
    for i in range(12):
        pts.append(ping(t0 + timedelta(seconds=10 * i), 0, speed_kmh=0.0, acc=False))
    for k in range(1, 21):
        pts.append(ping(t0 + timedelta(seconds=120 + 10 * k), k, speed_kmh=40.0))
    end = t0 + timedelta(seconds=320)
    for j in range(1, 31):
        pts.append(ping(end + timedelta(seconds=10 * j), 20, speed_kmh=0.0, acc=False))
    for p in pts:
        p["odometer_km"] = None
    return pts


async def vehicle_of(conn: asyncpg.Connection, tid: str) -> int:
    return int(await conn.fetchval("SELECT vehicle_id FROM terminals WHERE id = $1", tid))


def one_vehicle_deriver(vid: int) -> Deriver:
    # shard (vid, 10⁶): only this vehicle (ids are small), with a cursor of its own
    return Deriver(DeriveSettings(_env_file=None), shard=(vid, 1_000_000))  # type: ignore[call-arg]


async def set_cursor(conn: asyncpg.Connection, d: Deriver, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO derive_cursors (name, position) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
        d.cursor_name,
        at,
    )


async def test_old_buffered_pings_are_queued_and_derived(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    ingest_procs.start()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)  # below lookback_h (48)
    drive = a_drive(t0)
    assert publisher(tid).send("positions", [drive]) == 1
    dsn = mq_settings.db.dsn()
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    assert await wait_rows(dsn, sql, (tid,), len(drive)) == len(drive)
    conn = await asyncpg.connect(dsn)
    try:
        vid = await vehicle_of(conn, tid)
        queued = await conn.fetch(
            "SELECT from_ts, reason FROM derive_backlog WHERE vehicle_id = $1", vid
        )
        assert [(r["from_ts"], r["reason"]) for r in queued] == [(t0, "old_ping")]
        # what an operator sees (other tests' late batches may be queued too)
        shown = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "fleet"), "derive", "status", "--json"],
            env={**os.environ, "FLEET_DB__NAME": mq_settings.db.name},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        old = {b["reason"]: b for b in orjson.loads(shown.stdout)["backlog"]}["old_ping"]
        assert old["vehicles"] >= 1 and old["oldest_point"] <= t0.isoformat()

        d = one_vehicle_deriver(vid)
        await set_cursor(conn, d, datetime.now(UTC) - timedelta(seconds=60))
        rep = await d.cycle(conn)
        assert rep.points == 0, "the cursor alone does not see pings this old"
        assert rep.backlog == 1 and rep.reprocessed == 1
        trips = await conn.fetch(
            "SELECT started_at, distance_m FROM vehicle_trips WHERE vehicle_id = $1", vid
        )
        assert len(trips) == 1 and 1300 < trips[0]["distance_m"] < 1700
        km = await conn.fetchval(
            "SELECT distance_km FROM vehicle_daily_mileage WHERE vehicle_id = $1", vid
        )
        assert 1.3 < km < 1.7
        assert not await conn.fetchval(
            "SELECT count(*) FROM derive_backlog WHERE vehicle_id = $1", vid
        )
        # taken once: the next cycle has nothing more to do for it
        rep = await d.cycle(conn)
        assert rep.backlog == 0 and rep.reprocessed == 0
    finally:
        await conn.close()


async def test_batch_committed_late_is_queued_and_derived(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    # a short threshold so that a 3 s stall makes the batch "late" (default 5 s < settle 15 s)
    ingest_procs.start(FLEET_INGEST__DERIVE_LATE_COMMIT_S="1.5")
    dsn = mq_settings.db.dsn()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    drive = a_drive(t0)
    pub = publisher(tid)
    conn = await asyncpg.connect(dsn)
    blocker = await asyncpg.connect(dsn)
    try:
        vid = await vehicle_of(conn, tid)
        # The first ping creates the live row; then hold that row locked, as a stalled
        # database would, while the rest arrives: the ingest's batch waits on the lock.
        assert pub.send("position", drive[:1]) == 1
        sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
        assert await wait_rows(dsn, sql, (tid,), 1) == 1
        stall = blocker.transaction()
        await stall.start()
        await blocker.execute(
            "SELECT 1 FROM latest_positions WHERE vehicle_id = $1 FOR UPDATE", vid
        )
        sent_at = datetime.now(UTC)
        assert pub.send("positions", [drive[1:]]) == 1
        await asyncio.sleep(3.0)
        assert await conn.fetchval(sql, tid) == 1, "the batch must be waiting on the lock"
        await stall.rollback()
        assert await wait_rows(dsn, sql, (tid,), len(drive)) == len(drive)
        received = await conn.fetchval(
            "SELECT max(received_at) FROM positions WHERE terminal_id = $1", tid
        )
        assert received < sent_at + timedelta(seconds=1.5)  # received before the stall ended
        queued = await conn.fetch(
            "SELECT from_ts, reason FROM derive_backlog WHERE vehicle_id = $1", vid
        )
        assert [(r["from_ts"], r["reason"]) for r in queued] == [
            (drive_ts(drive[1]), "late_commit")
        ]

        # The cursor had already passed those rows' received_at when they became visible.
        d = one_vehicle_deriver(vid)
        await set_cursor(conn, d, received + timedelta(seconds=1))
        rep = await d.cycle(conn)
        assert rep.points == 0
        assert rep.backlog == 1 and rep.reprocessed == 1
        trips = await conn.fetch("SELECT distance_m FROM vehicle_trips WHERE vehicle_id = $1", vid)
        assert len(trips) == 1 and 1300 < trips[0]["distance_m"] < 1700
    finally:
        await blocker.close()
        await conn.close()


def drive_ts(p: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(p["ts"])
