"""The derive worker process (`fleet derive run`): a cycle every ``cycle_s``, published after
commit.

It runs beside the ingest, never on its hot path; what a cycle does is in
``telematics.derive.cycle``. Several workers can split the fleet with ``--shard i/n``
(vehicle_id % n = i, one cursor per shard); within a shard an advisory lock keeps a single
runner. A failed cycle is logged and retried; a worker behind its settle window runs the next
window at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from fleet.holidays import calendar
from fleet.logging import get_logger
from telematics import bus
from telematics.derive.cycle import Deriver
from telematics.derive.report import CycleReport
from telematics.rules.thresholds import DeriveSettings

log = get_logger("derive")


async def publish(redis: Redis, rep: CycleReport) -> None:
    for type_, org_path, data in rep.events:
        await bus.publish_event(redis, type_, data, org_path=org_path)


async def run_forever(
    dsn: str,
    redis_url: str,
    cfg: DeriveSettings,
    *,
    shard: tuple[int, int] = (0, 1),
    once: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """The worker loop: a cycle every ``cycle_s``; a failed cycle is logged and retried."""
    deriver = Deriver(cfg, shard=shard)
    redis = bus.redis_client(redis_url)
    stop = stop or asyncio.Event()
    conn: asyncpg.Connection | None = None
    checked = False  # the start-up check of the holidays calendar, once per process
    try:
        while not stop.is_set():
            behind = False
            started = asyncio.get_running_loop().time()
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(
                        dsn, server_settings={"application_name": "derive"}
                    )
                    if not checked:
                        cal = await calendar.load(conn)
                        calendar.warn_missing(cal, datetime.now(deriver.tz).date(), "derive")
                        checked = True
                rep = await deriver.cycle(conn)
                await publish(redis, rep)
                behind = (
                    rep.ran
                    and rep.cursor is not None
                    and rep.cursor
                    < datetime.now(UTC) - timedelta(seconds=cfg.settle_s + cfg.cycle_s)
                )
                if rep.points or rep.events or rep.backlog:
                    log.info(
                        "derive.cycle",
                        points=rep.points,
                        vehicles=rep.vehicles,
                        backlog=rep.backlog,
                        reprocessed=rep.reprocessed,
                        segments=rep.segments,
                        alerts=rep.alerts_new,
                        status=rep.status_changes,
                        cursor=rep.cursor.isoformat() if rep.cursor else None,
                        seconds=round(asyncio.get_running_loop().time() - started, 3),
                    )
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ) as exc:
                log.warning("derive.cycle_failed", error=repr(exc)[:300])
                if conn is not None and not conn.is_closed():
                    await conn.close()
                conn = None
            if once:
                break
            if behind:
                continue  # catching up: the next window at once
            elapsed = asyncio.get_running_loop().time() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.5, cfg.cycle_s - elapsed))
    finally:
        if conn is not None and not conn.is_closed():
            await conn.close()
        await redis.aclose()
