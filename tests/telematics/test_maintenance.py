"""Closed position days re-ordered by (vehicle_id, ts) with the real pg_repack, online."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from fleet.config import Settings
from telematics.positions.maintenance import DayPartition, due, repack_due
from tests.telematics.conftest import FLEET_BIN

VEHICLES = 20
PINGS = 300  # per vehicle, every 10 s


def _day(days_ago: int) -> date:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date()


async def _sorted_share(conn: asyncpg.Connection, table: str) -> float:
    """Share of physically adjacent rows that are the same vehicle's consecutive pings."""
    rows = await conn.fetch(f'SELECT vehicle_id, ts FROM "{table}" ORDER BY ctid')
    keys = [(r["vehicle_id"], r["ts"]) for r in rows]
    pairs = list(itertools.pairwise(keys))
    return sum(a[0] == b[0] and a[1] < b[1] for a, b in pairs) / max(len(pairs), 1)


async def test_repack_orders_a_closed_day_while_late_pings_arrive(settings: Settings) -> None:
    day = _day(5)
    table = f"positions_{day:%Y%m%d}"
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        await conn.execute(f'DELETE FROM "{table}"')
        await conn.execute("DELETE FROM position_partition_repacks WHERE partition = $1", table)
        # Arrival order: every vehicle's ping of second k, then second k + 10, ...
        await conn.execute(
            """
            INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh)
            SELECT v, $1::timestamptz + k * interval '10 s', 'GX' || lpad(v::text, 8, '0'),
                   ST_SetSRID(ST_MakePoint(108.3 + v * 0.01, 22.8 + k * 0.0001), 4326), 40
            FROM generate_series(0, $2 - 1) k, generate_series(1, $3) v
            ORDER BY k, v
            """,
            start,
            PINGS,
            VEHICLES,
        )
        before = await _sorted_share(conn, table)
        assert before < 0.2, before  # interleaved: vehicle ids alternate

        # Late pings keep arriving for that day while pg_repack rewrites it.
        late: list[datetime] = []
        stop = asyncio.Event()

        async def late_pings() -> None:
            w = await asyncpg.connect(settings.db.dsn())
            try:
                k = 0
                while not stop.is_set():
                    ts = start + timedelta(hours=2, seconds=k)
                    await w.execute(
                        "INSERT INTO positions (vehicle_id, ts, terminal_id, geom)"
                        " VALUES (1, $1, 'GX00000001', ST_SetSRID(ST_MakePoint(108, 22), 4326))",
                        ts,
                    )
                    late.append(ts)
                    k += 1
                    await asyncio.sleep(0.02)
            finally:
                await w.close()

        writer = asyncio.create_task(late_pings())
        await asyncio.sleep(0.2)
        lines: list[str] = []
        results = await repack_due(settings, days=[day], progress=lines.append)
        await asyncio.sleep(0.2)
        stop.set()
        await writer

        assert [r.ok for r in results] == [True], results
        assert len(late) > 5, "the writer was blocked"
        total = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
        assert total == VEHICLES * PINGS + len(late)  # nothing lost, nothing doubled
        assert await _sorted_share(conn, table) > 0.95
        rec = await conn.fetchrow(
            "SELECT rows_before, rows_after FROM position_partition_repacks WHERE partition = $1",
            table,
        )
        assert rec is not None and rec["rows_after"] >= VEHICLES * PINGS
        audit = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'positions.repack' AND entity_id = $1",
            table,
        )
        assert audit >= 1
        assert any(table in line and "ok" in line for line in lines), lines
        # Still a partition of `positions`: the parent table reads the day.
        n = await conn.fetchval(
            "SELECT count(*) FROM positions WHERE ts >= $1 AND ts < $1 + interval '1 day'",
            datetime.combine(day, datetime.min.time(), tzinfo=UTC),
        )
        assert n == total

        # Done once: the next round has nothing for that day.
        again = await repack_due(settings, days=[day])
        assert again == []

        # An empty closed day is skipped: not repacked, not recorded, not audited.
        empty_day = _day(6)
        empty = f"positions_{empty_day:%Y%m%d}"
        await conn.execute(f'DELETE FROM "{empty}"')
        await conn.execute("DELETE FROM position_partition_repacks WHERE partition = $1", empty)
        assert await repack_due(settings, days=[empty_day]) == []
        assert not await conn.fetchval(
            "SELECT count(*) FROM position_partition_repacks WHERE partition = $1", empty
        )
    finally:
        await conn.execute(f'DELETE FROM "{table}"')
        await conn.close()


def test_due_waits_for_the_day_to_settle() -> None:
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    done = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    parts = [
        DayPartition("positions_20261123", date(2026, 11, 23), 100, None, None),
        DayPartition("positions_20261124", date(2026, 11, 24), 100, done, 100),
        DayPartition("positions_20261125", date(2026, 11, 25), 100, None, None),  # ended 3 h ago
        DayPartition("positions_20261122", date(2026, 11, 22), 0, None, None),  # empty
    ]
    names = [p.name for p in due(parts, now=now, settle=timedelta(hours=6))]
    assert names == ["positions_20261123"]
    names = [p.name for p in due(parts, now=now, settle=timedelta(hours=2), force=True)]
    assert names == ["positions_20261123", "positions_20261124", "positions_20261125"]


@pytest.mark.parametrize(
    ("day", "message"),
    [(str(_day(0)), "not over yet"), ("1999-01-01", "no partition"), ("2026-13-01", "month")],
)
def test_cli_refuses_days_it_cannot_repack(settings: Settings, day: str, message: str) -> None:
    # the session's environment (database server, a shifted clock's libfaketime), this DB
    env = {**os.environ, "FLEET_DB__NAME": settings.db.name}
    r = subprocess.run(
        [FLEET_BIN, "positions", "repack", "--day", day],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
