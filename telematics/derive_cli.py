"""`fleet derive ...`: the derive worker (status, trips/stops, mileage, supervision alerts)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Annotated

import typer

derive_app = typer.Typer(
    help="Derived state and supervision alerts from stored positions (a periodic worker).",
    no_args_is_help=True,
)


def _shard(value: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError as exc:
        raise typer.BadParameter("expected i/n, e.g. 0/2", param_hint="--shard") from exc
    if n < 1 or not 0 <= i < n:
        raise typer.BadParameter("need 0 <= i < n", param_hint="--shard")
    return i, n


@derive_app.command("run")
def run(
    once: Annotated[bool, typer.Option(help="run a single cycle and exit")] = False,
    shard: Annotated[
        str, typer.Option(help="i/n: handle vehicles with id % n = i (one worker per shard)")
    ] = "0/1",
) -> None:
    """Run the derive worker: every cycle reads newly received positions, updates status,
    trips, stops, daily mileage and raises supervision alerts (thresholds: FLEET_DERIVE__*)."""
    from fleet.config import get_settings
    from fleet.logging import configure
    from telematics.derive.worker import run_forever
    from telematics.rules.thresholds import get_derive_settings

    configure()
    settings = get_settings()
    cfg = get_derive_settings()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(
            settings.db.dsn(), settings.redis.url, cfg, shard=_shard(shard), once=once, stop=stop
        )

    asyncio.run(go())


@derive_app.command("reprocess")
def reprocess(
    vehicle: Annotated[int, typer.Option(min=1, help="vehicle id")],
    since: Annotated[
        datetime, typer.Option(help="re-derive from the segment containing this time (UTC)")
    ],
    until: Annotated[
        datetime | None, typer.Option(help="up to this time (UTC; default now)")
    ] = None,
) -> None:
    """Re-derive one vehicle's trips, stops, mileage and point alerts from stored positions
    (idempotent: alerts are deduplicated, segments replaced)."""
    import asyncpg

    from fleet.config import get_settings
    from fleet.holidays import calendar
    from telematics.derive.cycle import Deriver
    from telematics.rules.thresholds import get_derive_settings

    settings = get_settings()
    lo = since if since.tzinfo else since.replace(tzinfo=UTC)
    hi = until or datetime.now(UTC)
    hi = hi if hi.tzinfo else hi.replace(tzinfo=UTC)

    async def go() -> tuple[int, int]:
        conn = await asyncpg.connect(settings.db.dsn(), server_settings={"application_name": "cli"})
        try:
            await calendar.load(conn)  # the holidays the off-hours rules read
            async with conn.transaction():
                segs, drafts, _ = await Deriver(get_derive_settings()).reprocess_vehicle(
                    conn, vehicle, lo, hi
                )
            return len(segs), len(drafts)
        finally:
            await conn.close()

    segs, alerts = asyncio.run(go())
    typer.echo(f"vehicle {vehicle}: {segs} segments rewritten, {alerts} alert episodes", err=True)


_STATUS_SQL = """
SELECT c.name, c.position, c.updated_at, now() - c.position AS lag
FROM derive_cursors c WHERE c.name LIKE 'received_at%' ORDER BY c.name
"""
_BACKLOG_SQL = """
SELECT reason, count(*) AS entries, count(DISTINCT vehicle_id) AS vehicles,
       min(from_ts) AS oldest_point, min(queued_at) AS oldest_queued
FROM derive_backlog GROUP BY reason ORDER BY reason
"""


@derive_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Where the derive worker stands: each shard's cursor and its lag behind the clock (it
    trails by settle_s by design), and the backlog the ingest queued for it (rows the cursor
    cannot see: committed late, or buffered pings older than lookback_h)."""
    import asyncpg
    import orjson

    from fleet.config import get_settings

    async def go() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        conn = await asyncpg.connect(
            get_settings().db.dsn(), server_settings={"application_name": "cli"}
        )
        try:
            return await conn.fetch(_STATUS_SQL), await conn.fetch(_BACKLOG_SQL)
        finally:
            await conn.close()

    cursors, backlog = asyncio.run(go())
    if as_json:
        out = {
            "cursors": [
                {
                    "name": r["name"],
                    "position": r["position"].isoformat(),
                    "lag_s": round(r["lag"].total_seconds(), 1),
                }
                for r in cursors
            ],
            "backlog": [
                {
                    "reason": r["reason"],
                    "entries": r["entries"],
                    "vehicles": r["vehicles"],
                    "oldest_point": r["oldest_point"].isoformat(),
                    "oldest_queued": r["oldest_queued"].isoformat(),
                }
                for r in backlog
            ],
        }
        typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    if not cursors:
        typer.echo("no derive cursor yet: the worker has not run (fleet derive run)")
    for r in cursors:
        typer.echo(
            f"cursor {r['name']:<20} at {r['position']:%Y-%m-%d %H:%M:%S} UTC,"
            f" {r['lag'].total_seconds():,.0f} s behind"
        )
    if not backlog:
        typer.echo("backlog: empty")
    for r in backlog:
        typer.echo(
            f"backlog {r['reason']:<12} {r['entries']:,} entries, {r['vehicles']:,} vehicles,"
            f" oldest point {r['oldest_point']:%Y-%m-%d %H:%M} UTC,"
            f" queued since {r['oldest_queued']:%H:%M:%S} UTC"
        )
