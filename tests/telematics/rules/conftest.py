"""Fixtures and helpers of the rule tests: crafted drives through a real derive cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from telematics.derive.cycle import Deriver
from tests.telematics.test_derive import cfg, insert_positions, offset, raw, run_until

BASE = (22.817, 108.366)


@pytest.fixture
async def apg(conn: AsyncConnection) -> asyncpg.Connection:
    return await raw(conn)


def drive(
    start: datetime,
    n: int,
    speed: float,
    *,
    dt: int = 10,
    east_m: float = 50.0,
    origin: tuple[float, float] = BASE,
    acc: bool = True,
) -> list[dict[str, Any]]:
    lat, lon = origin
    out = []
    for i in range(n):
        la, lo = offset(lat, lon, 0.0, east_m * i)
        out.append(
            {
                "ts": start + timedelta(seconds=dt * i),
                "lat": la,
                "lon": lo,
                "speed_kmh": speed,
                "acc": acc,
            }
        )
    return out


async def alerts(apg: asyncpg.Connection, vid: int, kind: str | None = None) -> list[Any]:
    return list(
        await apg.fetch(
            "SELECT kind, started_at, ended_at, message, evidence::text AS evidence, dedup_key,"
            " org_id FROM alerts WHERE vehicle_id = $1 AND ($2::text IS NULL OR kind = $2)"
            " ORDER BY started_at",
            vid,
            kind,
        )
    )


async def derive(apg: asyncpg.Connection, pts: list[dict[str, Any]], vid: int, **kw: Any) -> Any:
    await insert_positions(apg, vid, pts)
    d = Deriver(cfg(window_s=7200, **kw))
    now = max(p["ts"] for p in pts) + timedelta(seconds=30)
    start = min(p["ts"] for p in pts) - timedelta(seconds=1)
    return await run_until(d, apg, now, start=start)


# Tuesday 24 Nov 2026, 10:00 Asia/Shanghai: a working day, in working hours
WORK = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# The geofence tests' fences exist before the drives they judge (a fence applies from its
# creation on).
FENCED_SINCE = WORK - timedelta(days=30)
