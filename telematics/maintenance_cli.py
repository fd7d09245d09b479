"""`fleet positions ...`: day partitions, their repack state, the maintenance worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

positions_app = typer.Typer(
    help="Position storage: day partitions and their re-ordering by (vehicle, time).",
    no_args_is_help=True,
)

Settle = Annotated[
    float,
    typer.Option(min=0, max=24 * 30, help="hours a day must be over (UTC) before it is repacked"),
]


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@positions_app.command("status")
def status() -> None:
    """List the day partitions: estimated rows and when each was repacked."""
    import asyncpg

    from fleet.config import get_settings
    from telematics.positions.maintenance import day_partitions

    async def go() -> None:
        conn = await asyncpg.connect(get_settings().db.dsn())
        try:
            parts = await day_partitions(conn)
        finally:
            await conn.close()
        typer.echo(f"{'partition':<20} {'day':<10} {'rows (est.)':>12}  repacked")
        for p in parts:
            when = (
                p.repacked_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                if p.repacked_at
                else "—"
            )
            rows = f"{p.rows:,}" if p.rows >= 0 else "?"
            typer.echo(f"{p.name:<20} {p.day.isoformat():<10} {rows:>12}  {when}")

    asyncio.run(go())


@positions_app.command("repack")
def repack(
    day: Annotated[
        list[str] | None,
        typer.Option(help="a day (YYYY-MM-DD, UTC) to repack; repeatable. Default: all due"),
    ] = None,
    settle_hours: Settle = 6,
    force: Annotated[bool, typer.Option(help="repack again days already done")] = False,
    dry_run: Annotated[bool, typer.Option(help="only list what would be repacked")] = False,
) -> None:
    """Rewrite closed days in (vehicle_id, ts) order with pg_repack (online, brief locks).

    A vehicle-day track read then touches a few pages instead of one per ping. Late pings
    keep arriving while it runs; nothing is blocked for more than the final swap.
    """
    from fleet.config import get_settings
    from fleet.logging import configure
    from telematics.positions.maintenance import RepackUnavailable, repack_due

    configure("WARNING")
    try:
        days = [date.fromisoformat(d) for d in day] if day else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--day") from exc
    try:
        results = asyncio.run(
            repack_due(
                get_settings(),
                settle=timedelta(hours=settle_hours),
                days=days,
                force=force,
                dry_run=dry_run,
                progress=_echo,
            )
        )
    except (RepackUnavailable, ValueError) as exc:
        _echo(f"repack: {exc}")
        raise typer.Exit(2) from exc
    if not results:
        _echo("nothing to repack")
        return
    verb = "would repack" if dry_run else "repacked"
    failed = [r for r in results if not r.ok]
    _echo(f"{verb} {len(results) - len(failed)} partition(s); {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@positions_app.command("maintain")
def maintain(
    interval: Annotated[
        float, typer.Option(min=10, max=86_400, help="seconds between checks")
    ] = 3600,
    settle_hours: Settle = 6,
) -> None:
    """Worker: every --interval, repack the closed days that are due (one at a time)."""
    from fleet.config import get_settings
    from fleet.logging import configure, get_logger
    from telematics.positions.maintenance import RepackUnavailable, repack_due

    configure("INFO")
    log = get_logger("telematics.maintenance")

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("maintain.started", interval_s=interval, settle_hours=settle_hours)
        while not stop.is_set():
            try:
                results = await repack_due(get_settings(), settle=timedelta(hours=settle_hours))
                if results:
                    log.info("maintain.round", repacked=sum(r.ok for r in results),
                             failed=sum(not r.ok for r in results))  # fmt: skip
            except RepackUnavailable as exc:
                log.warning("maintain.unavailable", error=str(exc))
            except Exception as exc:  # the database may be restarting: try next round
                log.warning("maintain.round_failed", error=repr(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        log.info("maintain.stopped", at=datetime.now(UTC).isoformat())

    asyncio.run(go())
